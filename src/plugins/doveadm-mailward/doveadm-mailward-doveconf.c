/* doveadm mailward check's reading of the configuration through doveconf
   (the configuration of every protocol, which doveadm's own settings do
   not hold). */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "master-service.h"
#include "doveadm-mailward-doveconf.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

/* doveconf's path: next to the running doveadm, else from PATH */
static const char *doveconf_path(void)
{
	char buf[PATH_MAX];
	const char *slash, *path;
	ssize_t len;

	len = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (len > 0) {
		buf[len] = '\0';
		slash = strrchr(buf, '/');
		if (slash != NULL) {
			path = t_strconcat(t_strdup_until(buf, slash),
					   "/doveconf", NULL);
			if (access(path, X_OK) == 0)
				return path;
		}
	}
	return "doveconf";
}

#define DOVECONF_MAX_ARGS 8

/* Runs doveconf -c <doveadm's config> args... (at most
   DOVECONF_MAX_ARGS). Returns 0 with its output appended to out, or -1
   with an error. */
static int
doveconf_run(const char *const *args, string_t *out, const char **error_r)
{
	const char *argv[DOVECONF_MAX_ARGS + 4];
	unsigned int n = 0;
	char buf[1024];
	ssize_t ret;
	int fd[2], status;
	pid_t pid;

	argv[n++] = doveconf_path();
	argv[n++] = "-c";
	argv[n++] = master_service_get_config_path(master_service);
	for (; *args != NULL; args++) {
		i_assert(n < N_ELEMENTS(argv) - 1);
		argv[n++] = *args;
	}
	argv[n] = NULL;
	if (pipe(fd) < 0) {
		*error_r = t_strdup_printf("pipe() failed: %m");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		*error_r = t_strdup_printf("fork() failed: %m");
		i_close_fd(&fd[0]);
		i_close_fd(&fd[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (dup2(fd[1], STDOUT_FILENO) < 0 ||
		    (null >= 0 && (dup2(null, STDIN_FILENO) < 0 ||
				   dup2(null, STDERR_FILENO) < 0)))
			_exit(EX_OSERR);
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	i_close_fd(&fd[1]);
	while ((ret = read(fd[0], buf, sizeof(buf))) != 0) {
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		str_append_data(out, buf, ret);
	}
	i_close_fd(&fd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) ;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		*error_r = t_strdup_printf("%s %s failed (status %d)",
			argv[0], t_strarray_join(argv + 3, " "), status);
		return -1;
	}
	return 0;
}

int mailward_doveconf_get(const char *filter, const char *key,
			  const char **value_r, const char **error_r)
{
	const char *args[6];
	unsigned int n = 0;
	string_t *out = t_str_new(256);

	args[n++] = "-h";
	args[n++] = key;
	if (filter != NULL) {
		args[n++] = "-f";
		args[n++] = filter;
	}
	args[n] = NULL;
	if (doveconf_run(args, out, error_r) < 0)
		return -1;
	while (str_len(out) > 0 && str_data(out)[str_len(out) - 1] == '\n')
		str_truncate(out, str_len(out) - 1);
	*value_r = str_c(out);
	return 0;
}

#if DOVECOT_PREREQ(2, 4, 0)

/* Applies the mail_plugins/NAME=yes|no lines of one doveconf -F filter
   section (op lines) to names. */
static void
mail_plugins_apply(ARRAY_TYPE(const_string) *names,
		   const ARRAY_TYPE(const_string) *ops)
{
	const char *op, *name, *value;
	unsigned int idx;

	array_foreach_elem(ops, op) {
		value = strchr(op, '=');
		if (value == NULL)
			continue;
		name = t_strdup_until(op, value++);
		for (idx = 0; idx < array_count(names); idx++) {
			if (strcmp(array_idx_elem(names, idx), name) == 0)
				break;
		}
		if (strncmp(value, "no", 2) == 0) {
			if (idx < array_count(names))
				array_delete(names, idx, 1);
		} else if (idx == array_count(names)) {
			array_push_back(names, &name);
		}
	}
}

/* Dovecot 2.4: the mail_plugins a protocol's processes get, as Dovecot
   itself reads the configuration. doveconf -F lists, in its mail_user
   module, mail_plugins/NAME=yes|no per filter (":FILTER " is the global
   one, ':FILTER protocol="imap"' a protocol's), with "# stop list" where
   a list replaces the inherited one (mail_plugins = a b). Returns the
   names separated by spaces. */
static const char *
mail_plugins_from_dump(const char *dump, const char *protocol)
{
	const char *filter =
		t_strdup_printf(":FILTER protocol=\"%s\"", protocol);
	ARRAY_TYPE(const_string) names, global_ops, proto_ops, *ops = NULL;
	const char *const *lines;
	bool in_module = FALSE, stop = FALSE;

	t_array_init(&names, 8);
	t_array_init(&global_ops, 8);
	t_array_init(&proto_ops, 8);
	for (lines = t_strsplit(dump, "\n"); *lines != NULL; lines++) {
		const char *line = *lines;

		if (line[0] == '#') {
			in_module = strcmp(line, "# mail_user") == 0;
		} else if (!in_module) {
			;
		} else if (strncmp(line, ":FILTER ", 8) == 0) {
			ops = strcmp(line, ":FILTER ") == 0 ? &global_ops :
				strcmp(line, filter) == 0 ? &proto_ops : NULL;
		} else if (ops != NULL &&
			   strncmp(line, "mail_plugins/", 13) == 0) {
			if (ops == &proto_ops &&
			    strstr(line, "# stop list") != NULL)
				stop = TRUE;
			line += 13;
			array_push_back(ops, &line);
		}
	}
	if (!stop)
		mail_plugins_apply(&names, &global_ops);
	mail_plugins_apply(&names, &proto_ops);
	array_append_zero(&names);
	return t_strarray_join(array_front(&names), " ");
}

int mailward_doveconf_mail_plugins(const char *service, const char **dump,
				   const char **plugins_r,
				   const char **error_r)
{
	if (*dump == NULL) {
		string_t *out = str_new(default_pool, 65536);
		const char *args[] = { "-F", NULL };

		if (doveconf_run(args, out, error_r) < 0) {
			str_free(&out);
			return -1;
		}
		*dump = t_strdup(str_c(out));
		str_free(&out);
	}
	*plugins_r = mail_plugins_from_dump(*dump, service);
	return 0;
}
#else

int mailward_doveconf_mail_plugins(const char *service,
				   const char **dump ATTR_UNUSED,
				   const char **plugins_r,
				   const char **error_r)
{
	return mailward_doveconf_get(t_strconcat("protocol=", service, NULL),
				     "mail_plugins", plugins_r, error_r);
}
#endif

