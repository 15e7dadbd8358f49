#ifndef DOVEADM_MAILWARD_DOVECONF_H
#define DOVEADM_MAILWARD_DOVECONF_H

/* What check says where a mail_plugins list lacks mailward: the usual
   cause on each Dovecot line */
#if DOVECOT_PREREQ(2, 4, 0)
#  define MAILWARD_DOVECONF_PLUGINS_HINT \
	"(a mail_plugins = line replaces the list; " \
	"mail_plugins { NAME = yes } adds to it)"
#else
#  define MAILWARD_DOVECONF_PLUGINS_HINT \
	"(a mail_plugins line without $mail_plugins?)"
#endif

/* Runs doveconf -c <doveadm's config> [-f filter] -h key (filter NULL:
   none; doveconf next to the running doveadm, else from PATH). Returns 0
   with *value_r the value without its trailing newlines (data stack), or
   -1 with *error_r (doveconf failed or could not be run; its stderr is
   not kept). */
int mailward_doveconf_get(const char *filter, const char *key,
			  const char **value_r, const char **error_r);

/* The mail_plugins that processes of service (a protocol: "imap",
   "doveadm", ...) get, as Dovecot reads the configuration, in *plugins_r
   as names separated by spaces (data stack). Dovecot 2.3: doveconf -f
   protocol=SERVICE -h mail_plugins. Dovecot 2.4: from doveconf -F, run
   once and kept in *dump (NULL at the first call; data stack, so calls
   sharing it must be in one data stack frame), which gives each filter's
   own list ops and where a list replaces the inherited one. Returns 0,
   or -1 with *error_r. */
int mailward_doveconf_mail_plugins(const char *service, const char **dump,
				   const char **plugins_r,
				   const char **error_r);

#endif
