/* mailward storage plugin: who acts on a user's mail, as audit records
   name it (another session through a shared namespace, or the
   administrator running doveadm) */

#include "lib.h"
#include "str.h"
#include "mailward-private.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

/* the real uid that started the process, before Dovecot switched to
   the mail user's uid (doveadm -u) */
static uid_t mailward_process_uid = (uid_t)-1;
static char *mailward_doveadm_actor_name = NULL;

/* Runs when the plugin is loaded: doveadm loads its mail plugins at
   startup, as the administrator, but initialises them only for the
   first mail user, after switching to that user's uid. */
static void __attribute__((constructor)) mailward_note_process_uid(void)
{
	mailward_process_uid = getuid();
}

void mailward_actor_init(void)
{
	if (mailward_process_uid == (uid_t)-1)
		mailward_process_uid = getuid();
}

void mailward_actor_deinit(void)
{
	i_free(mailward_doveadm_actor_name);
}

/* The kernel's login uid of the process (set by pam_loginuid at login,
   kept across su and sudo), or (uid_t)-1 if unset or unknown. */
static uid_t mailward_login_uid(void)
{
	char buf[32];
	unsigned int value;
	ssize_t ret;
	int fd;

	fd = open("/proc/self/loginuid", O_RDONLY);
	if (fd == -1)
		return (uid_t)-1;
	ret = read(fd, buf, sizeof(buf) - 1);
	i_close_fd(&fd);
	if (ret <= 0)
		return (uid_t)-1;
	buf[ret] = '\0';
	if (str_to_uint(t_strcut(buf, '\n'), &value) < 0 ||
	    value == (unsigned int)-1)
		return (uid_t)-1;
	return (uid_t)value;
}

static const char *mailward_uid_name(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);

	return pw != NULL ? t_strdup(pw->pw_name) : "?";
}

/* doveadm:NAME(uid=N): the administrator who ran doveadm, by the real
   uid that started it and its name; ",login=NAME(uid=N)" follows when
   that person logged in as someone else (su, sudo: the kernel's login
   uid differs). */
static const char *mailward_doveadm_actor(void)
{
	uid_t login_uid;

	if (mailward_doveadm_actor_name == NULL) T_BEGIN {
		string_t *str = t_str_new(64);

		str_printfa(str, "doveadm:%s(uid=%ld",
			    mailward_uid_name(mailward_process_uid),
			    (long)mailward_process_uid);
		login_uid = mailward_login_uid();
		if (login_uid != (uid_t)-1 &&
		    login_uid != mailward_process_uid) {
			str_printfa(str, ",login=%s(uid=%ld)",
				    mailward_uid_name(login_uid),
				    (long)login_uid);
		}
		str_append_c(str, ')');
		mailward_doveadm_actor_name = i_strdup(str_c(str));
	} T_END;
	return mailward_doveadm_actor_name;
}

const char *mailward_user_actor(struct mailward_user *muser)
{
	const char *outer;

	if (muser->actor != NULL) {
		outer = mailward_user_actor(muser->actor);
		return outer == NULL ? muser->actor->user->username :
			t_strconcat(outer, "/", muser->actor->user->username,
				    NULL);
	}
	if (strcmp(muser->user->service, "doveadm") == 0)
		return mailward_doveadm_actor();
	return NULL;
}
