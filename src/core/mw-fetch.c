/* Whole-message IMAP fetches and partial coverage: see mw-fetch.h */

#include "mw-fetch.h"

#include <string.h>

/* Parses 1-20 decimal digits at *p into *value_r, advancing *p; FALSE on
   no digit or a value over UINT64_MAX. */
static bool parse_u64(const char **p, uint64_t *value_r)
{
	const char *s = *p;
	uint64_t value = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned int digit = (unsigned int)(*s - '0');

		if (value > (UINT64_MAX - digit) / 10)
			return false;
		value = value * 10 + digit;
	}
	*p = s;
	*value_r = value;
	return true;
}

/* "<offset>" or "<offset.size>" and the end of the name */
static bool parse_partial(const char *p, struct mw_fetch_att *att)
{
	if (*p == '\0')
		return true;
	if (*p++ != '<' || !parse_u64(&p, &att->offset))
		return false;
	att->partial = true;
	att->size = UINT64_MAX;
	if (*p == '.') {
		p++;
		if (!parse_u64(&p, &att->size))
			return false;
	}
	return p[0] == '>' && p[1] == '\0';
}

bool mw_fetch_att_parse(const char *name, struct mw_fetch_att *att_r)
{
	static const struct {
		const char *prefix;
		bool binary;
	} sections[] = {
		{ "BODY[]", false },
		{ "BODY.PEEK[]", false },
		{ "BINARY[]", true },
		{ "BINARY.PEEK[]", true },
	};
	unsigned int i;

	memset(att_r, 0, sizeof(*att_r));
	att_r->size = UINT64_MAX;
	if (name == NULL)
		return false;
	if (strcmp(name, "RFC822") == 0)
		return true;
	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		size_t len = strlen(sections[i].prefix);

		if (strncmp(name, sections[i].prefix, len) != 0)
			continue;
		att_r->binary = sections[i].binary;
		return parse_partial(name + len, att_r);
	}
	return false;
}

static struct mw_fetch_cover_entry *
cover_find(struct mw_fetch_cover *cover, const unsigned char box_guid[16],
	   uint32_t uid, bool binary)
{
	unsigned int i;

	for (i = 0; i < MW_FETCH_COVER_MAX; i++) {
		struct mw_fetch_cover_entry *e = &cover->entries[i];

		if (e->used != 0 && e->uid == uid && e->binary == binary &&
		    memcmp(e->box_guid, box_guid, sizeof(e->box_guid)) == 0)
			return e;
	}
	return NULL;
}

/* A free slot, else the least recently used one (forgotten) */
static struct mw_fetch_cover_entry *
cover_take(struct mw_fetch_cover *cover, const unsigned char box_guid[16],
	   uint32_t uid, bool binary)
{
	struct mw_fetch_cover_entry *e = &cover->entries[0];
	unsigned int i;

	for (i = 1; i < MW_FETCH_COVER_MAX && e->used != 0; i++) {
		if (cover->entries[i].used < e->used)
			e = &cover->entries[i];
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->box_guid, box_guid, sizeof(e->box_guid));
	e->uid = uid;
	e->binary = binary;
	return e;
}

bool mw_fetch_cover_add(struct mw_fetch_cover *cover,
			const unsigned char box_guid[16], uint32_t uid,
			const struct mw_fetch_att *att, uint64_t section_size)
{
	struct mw_fetch_cover_entry *e;
	uint64_t end;

	if (!att->partial)
		return true;
	/* the range's end, saturated (size UINT64_MAX: to the end) */
	end = att->size > UINT64_MAX - att->offset ?
		UINT64_MAX : att->offset + att->size;
	e = cover == NULL ? NULL : cover_find(cover, box_guid, uid, att->binary);
	if (e == NULL) {
		if (att->offset != 0 || cover == NULL)
			return att->offset == 0 && end >= section_size;
		if (end >= section_size) {
			/* the whole section in one range */
			return true;
		}
		e = cover_take(cover, box_guid, uid, att->binary);
	} else if (e->done || att->offset > e->covered) {
		/* already reported, or a gap: nothing more is known */
		e->used = ++cover->clock;
		return false;
	}
	e->used = ++cover->clock;
	if (end > e->covered)
		e->covered = end;
	if (e->covered < section_size)
		return false;
	e->done = true;
	return true;
}
