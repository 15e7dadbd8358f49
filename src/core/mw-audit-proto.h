#ifndef MW_AUDIT_PROTO_H
#define MW_AUDIT_PROTO_H

/* The protocol between mail processes and the audit writer, and the
   spool format of records that wait for it (docs/audit-service.md): the
   one definition both sides use (the plugin's mailward-audit-client.c and
   src/auditd/). Constants only; no Dovecot headers.

   Lines are tab-separated and end with '\n'. Each side first sends
   "VERSION\t<name>\t<major>\t<minor>"; a different name or major is
   refused. The client sends "E\t<body>" per event and "F\t<id>" to ask
   for durability; the writer answers "R\t<n>\t<reason>" for the n-th E
   line of the connection it rejected, "F\t<id>\tOK" or
   "F\t<id>\tFAIL\t<reason>", and "ERROR\t<reason>" before it closes a
   connection it refuses. */

#define MW_AUDIT_PROTOCOL_NAME "mailward-audit"
#define MW_AUDIT_PROTOCOL_MAJOR 1
#define MW_AUDIT_PROTOCOL_MINOR 0

#define MW_AUDIT_PROTO_VERSION "VERSION"
#define MW_AUDIT_PROTO_EVENT "E"
#define MW_AUDIT_PROTO_FLUSH "F"
#define MW_AUDIT_PROTO_REJECTED "R"
#define MW_AUDIT_PROTO_ERROR "ERROR"
#define MW_AUDIT_PROTO_OK "OK"
#define MW_AUDIT_PROTO_FAIL "FAIL"
/* an F id that begins with this asks only for "written": the records
   are in the log file (they survive a crash of the writer process) and
   the writer syncs them within AUDITD_SYNC_MSECS or with the next
   durable flush (docs/audit-log.md, "Writer protocol"); a writer that
   does not know it makes them durable, which is more */
#define MW_AUDIT_PROTO_WRITTEN_MARK '~'

/* the writer's socket when mailward_audit_socket names none, relative to
   base_dir */
#define MW_AUDIT_DEFAULT_SOCKET "mailward-audit"

/* A spool file: this header line, then one record a line:
   "<time>\t<body>", time as the "time" field holds it
   (YYYY-MM-DDTHH:MM:SS.ffffffZ, MW_AUDIT_TIME_LEN bytes) */
#define MW_AUDIT_SPOOL_HEADER "mailward-audit-spool 1"
#define MW_AUDIT_TIME_LEN 27

#endif
