#ifndef MW_FETCH_H
#define MW_FETCH_H

/* When an IMAP FETCH gave a device the whole message (the rule of
   docs/admin-guide.md "Which IMAP fetches count"): only the whole
   message's section counts, BODY[] / BODY.PEEK[] / BINARY[] /
   BINARY.PEEK[] / RFC822 (RFC 3501 6.4.5, RFC 3516 4.2), at once or in
   partial ranges <offset.size> of one session that together cover it
   from its first byte. Any other section (HEADER, TEXT, a MIME part,
   n.MIME, RFC822.TEXT, sizes, BODYSTRUCTURE) never counts. Pure logic
   without I/O or allocation; the IMAP plugin gathers the facts.
   Dovecot-independent. */

#include <stdbool.h>
#include <stdint.h>

/* A fetch-att naming the whole message's section. */
struct mw_fetch_att {
	/* BINARY[] / BINARY.PEEK[]: offsets count in the decoded message
	   (the section's size is its BINARY.SIZE[]) */
	bool binary;
	/* a partial <offset.size> or <offset> was given */
	bool partial;
	/* the range asked for: bytes [offset, offset + size) of the
	   section; size is UINT64_MAX when none was given (to the end) */
	uint64_t offset, size;
};

/* Parses name, a FETCH data item as Dovecot's fetch handlers see it
   (upper-cased atom, e.g. "BODY.PEEK[]<0.65536>", "RFC822"). Returns TRUE
   and fills att_r if it is the whole message's section, with or without a
   partial; FALSE for anything else, including whatever is not understood
   (the fetch then does not count: fail safe). */
bool mw_fetch_att_parse(const char *name, struct mw_fetch_att *att_r);

/* How many messages' partial coverage one session tracks at most: past
   it the least recently extended message is forgotten (its ranges then
   count again only from its first byte). */
#define MW_FETCH_COVER_MAX 32

/* Coverage of one message's section by partial fetches: the contiguous
   prefix [0, covered) fetched so far. Ranges past the prefix are not
   kept. */
struct mw_fetch_cover_entry {
	/* the message's section: its mailbox's GUID, its UID, and BINARY[]
	   or BODY[] (their offsets count in different bytes) */
	unsigned char box_guid[16];
	uint32_t uid;
	bool binary;
	/* the prefix covered, in bytes of the section */
	uint64_t covered;
	/* last use (of mw_fetch_cover's clock); 0 = free slot */
	uint64_t used;
	/* the whole section was covered (and reported once) */
	bool done;
};

/* Partial coverage of one IMAP session, a fixed table owned by the caller
   (zero-filled = empty), one per session: coverage never carries over
   sessions. */
struct mw_fetch_cover {
	struct mw_fetch_cover_entry entries[MW_FETCH_COVER_MAX];
	uint64_t clock;
};

/* Records that the range of att was sent for the message (box_guid, 16
   bytes; uid) whose section att names is section_size bytes long.
   Returns TRUE if this fetch gives the device the whole message: att is
   not partial, or its range starts at 0 and reaches section_size, or it
   extends the session's covered prefix of that message to section_size
   (then once: later ranges of the same message return FALSE while it is
   remembered). A range that starts past the covered prefix (or past 0 for
   a message not tracked) is not kept. cover may be NULL for a fetch that
   is not partial. */
bool mw_fetch_cover_add(struct mw_fetch_cover *cover,
			const unsigned char box_guid[16], uint32_t uid,
			const struct mw_fetch_att *att, uint64_t section_size);

#endif
