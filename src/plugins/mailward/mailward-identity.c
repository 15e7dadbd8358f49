/* mailward: a message's identity in mailward's records (Dovecot's GUID,
   or for mbox the GUID plus a hash of the whole message) */

#include "lib.h"
#include "istream.h"
#include "hex-binary.h"
#include "sha2.h"
#include "mail-storage-private.h"
#include "mailward-policy-private.h"

/* mbox's GUID is a hash of some headers: two different messages (no
   Message-ID, same Date) can share it */
bool mailward_guid_is_shared(struct mail *mail)
{
	return strcmp(mail->box->storage->name, "mbox") == 0;
}

const char *mailward_mail_identity(struct mail *mail)
{
	struct istream *input;
	struct sha256_ctx ctx;
	unsigned char digest[SHA256_RESULTLEN];
	const unsigned char *data;
	const char *guid;
	size_t size;
	int ret;

	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		return NULL;
	if (!mailward_guid_is_shared(mail))
		return guid;
	guid = t_strdup(guid);
	if (mail_get_stream_because(mail, NULL, NULL, "mailward identity",
				    &input) < 0)
		return NULL;
	sha256_init(&ctx);
	i_stream_seek(input, 0);
	while ((ret = i_stream_read_more(input, &data, &size)) > 0) {
		sha256_loop(&ctx, data, size);
		i_stream_skip(input, size);
	}
	if (input->stream_errno != 0) {
		i_stream_seek(input, 0);
		return NULL;
	}
	i_stream_seek(input, 0);
	sha256_result(&ctx, digest);
	return t_strconcat(guid, "/", binary_to_hex(digest, 16), NULL);
}

bool mailward_mail_has_key(struct mail *mail,
			   const unsigned char key[MW_MSG_KEY_SIZE])
{
	unsigned char k[MW_MSG_KEY_SIZE];
	const char *guid;

	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		return FALSE;
	mw_msg_key(guid, k);
	if (!mailward_guid_is_shared(mail))
		return memcmp(k, key, MW_MSG_KEY_SIZE) == 0;
	/* the GUID part first: only then is the message read */
	if (memcmp(k, key, MW_MSG_KEY_GUID_PART) != 0)
		return FALSE;
	guid = mailward_mail_identity(mail);
	if (guid == NULL)
		return FALSE;
	mw_msg_key(guid, k);
	return memcmp(k, key, MW_MSG_KEY_SIZE) == 0;
}
