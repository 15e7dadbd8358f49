/* mailward storage plugin: the POP3 session object (what a POP3 session
   did with each message, its per-device view), which this file creates
   and frees, and what the POP3 plugin (pop3_mailward) tells the session
   and asks of it (mailward-plugin.h) */

#include "lib.h"
#include "str.h"
#include "hash.h"
#include "mailward-private.h"

struct mailward_pop3_session *
mailward_pop3_session_get(struct mailward_user *muser, struct mailbox *box)
{
	struct mailward_pop3_session *s = muser->pop3;

	if (s != NULL)
		return s->box == box ? s : NULL;
	pool_t pool = pool_alloconly_create("mailward pop3 session", 1024);
	s = p_new(pool, struct mailward_pop3_session, 1);
	s->pool = pool;
	s->box = box;
	hash_table_create_direct(&s->msgs, pool, 0);
	p_array_init(&s->hidden, pool, 16);
	p_array_init(&s->hidden_guid_parts, pool, 16);
	muser->pop3 = s;
	return s;
}

struct mailward_pop3_msg *
mailward_pop3_msg_find(struct mailward_user *muser, struct mail *mail)
{
	struct mailward_pop3_session *s = muser->pop3;

	if (s == NULL || s->box != mail->box)
		return NULL;
	return hash_table_lookup(s->msgs, POINTER_CAST(mail->uid));
}

void mailward_pop3_session_free(struct mailward_user *muser)
{
	if (muser->pop3 == NULL)
		return;
	hash_table_destroy(&muser->pop3->msgs);
	pool_unref(&muser->pop3->pool);
	muser->pop3 = NULL;
}

void mailward_pop3_client_start(struct mailward_user *muser,
				mailward_pop3_dele_at_quit_t *dele_at_quit,
				void *context, const char *deleted_flag)
{
	muser->pop3_dele_at_quit = dele_at_quit;
	muser->pop3_dele_context = context;
	muser->pop3_deleted_flag = p_strdup(muser->user->pool, deleted_flag);
}

void mailward_pop3_client_end(struct mailward_user *muser)
{
	muser->pop3_dele_at_quit = NULL;
	muser->pop3_dele_context = NULL;
}

void mailward_pop3_capability(struct mailward_user *muser, string_t *capa)
{
	char expire[32];

	if (mw_pop3_expire_capability(&muser->set, expire, sizeof(expire)))
		str_printfa(capa, "EXPIRE %s\r\n", expire);
	/* advertised where it is enforced: the device is known */
	if (muser->set.pop3_login_delay_secs > 0 && muser->device_registered) {
		str_printfa(capa, "LOGIN-DELAY %u\r\n",
			    muser->set.pop3_login_delay_secs);
	}
}

bool mailward_pop3_login_delayed(struct mailward_user *muser,
				 unsigned int *delay_secs_r,
				 unsigned int *wait_secs_r)
{
	*delay_secs_r = muser->set.pop3_login_delay_secs;
	*wait_secs_r = muser->pop3_login_wait;
	return muser->pop3_login_delayed;
}

const char *mailward_pop3_quit_kept_reason(struct mailward_user *muser)
{
	/* DELE'd messages stay on the server under hold and in a fail-safe
	   session (they come back in the next listing). Under the
	   leave-on-server policy they leave this device's view, which is
	   what a POP3 client's deletion means, and the expunge-after-*
	   policies expunge them after QUIT: there Dovecot's reply stays. */
	if (muser->set.hold)
		return "legal hold";
	if (muser->hold_unreadable)
		return "legal hold state unreadable";
	if (muser->fail_safe)
		return "server in fail-safe mode";
	return NULL;
}
