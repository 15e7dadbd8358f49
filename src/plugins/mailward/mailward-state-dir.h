#ifndef MAILWARD_STATE_DIR_H
#define MAILWARD_STATE_DIR_H

/* The state directory of a user, shared by the storage plugin and
   "doveadm mailward check" (header-only: the doveadm plugin does not link
   the storage plugin). */

/* setting: mailward_state_dir or NULL (unset); home: the user's home or
   NULL/"" if none. "~" and a leading "~/" are the home (Dovecot already
   expanded %h); unset is <home>/mailward. Returns the path (data stack)
   or NULL when it needs a home and there is none. Any other path is
   returned as given, also a relative one (the caller reports it). */
static inline const char *
mailward_state_dir_path(const char *setting, const char *home)
{
	bool have_home = home != NULL && home[0] != '\0';

	if (setting == NULL)
		return have_home ? t_strconcat(home, "/mailward", NULL) : NULL;
	if (setting[0] == '~' && (setting[1] == '\0' || setting[1] == '/')) {
		if (!have_home)
			return NULL;
		return t_strconcat(home, setting + 1, NULL);
	}
	return setting;
}

#endif
