#ifndef DOVEADM_MAILWARD_H
#define DOVEADM_MAILWARD_H

#include "mailward-doveadm-api.h"

/* The storage plugin's functions (mailward-doveadm-api.h), or NULL while
   lib20_mailward_plugin.so is not loaded in this process (mailward is not
   in mail_plugins for doveadm). Looked up once it is. */
const struct mailward_doveadm_api *doveadm_mailward_api(void);

/* commands of doveadm-mailward-check.c; they work without the storage
   plugin */
extern struct doveadm_cmd_ver2 doveadm_mailward_cmd_settings;
extern struct doveadm_cmd_ver2 doveadm_mailward_cmd_check;

#endif
