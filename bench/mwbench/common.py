"""Parameters shared by the benchmark's modules."""

import mwharness

PW = mwharness.PASSWORD
DEV_PW = {"deva-secret": "bench-a", "devb-secret": "bench-b"}

MODES = {
    "quick": dict(rounds=2, users=6, msgs=25, concurrency=4,
                  login_sessions=20, storm_sessions=48, storm_conc=8,
                  listing=[1000], list_sessions=2, load_cap=40),
    "default": dict(rounds=10, users=16, msgs=40, concurrency=4,
                    login_sessions=40, storm_sessions=96, storm_conc=8,
                    listing=[100, 1000, 10000], list_sessions=3,
                    load_cap=120),
}

TARGETS = {
    "throughput_mailward": 0.97,
    "throughput_audit": 0.90,
    "setup_added_ms": 1.0,
    "state_bytes_per_device_message": 64,
}
# loads whose throughput ratio is held against the targets
THROUGHPUT_LOADS = ("pop3-client", "pop3-leave", "pop3-expunge", "imap",
                    "imap-mix")

PHASE_CAP = 90          # seconds, one configuration in one round
WARMUP_CAP = 600        # seconds, untimed warm-up of one load


def log(*a):
    print(*a, flush=True)

