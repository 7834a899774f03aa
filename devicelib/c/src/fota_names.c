/*
 * fota_names.c - the protocol's names for enum fota_err, for logs. Kept
 * apart so that a firmware that does not log them links no strings.
 */
#include "fota.h"

const char *fota_err_name(enum fota_err err)
{
	/* PROTOCOL.md 6, then the local errors; as protocol.Reason names them. */
	static const char *const names[] = {
		"ok", "auth_failed", "unsupported_version", "busy", "malformed",
		"rollback", "wrong_class", "too_large", "bad_signature",
		"digest_mismatch", "flash_error", "unavailable", "timeout",
		"bad_chunk", "unsupported_suite", "declined", "frame_too_large",
		"unexpected_message", "bad_record", "truncated",
		"counter_exhausted", "random_failed", "bad_config", "misuse",
		"abi_mismatch"
	};

	if ((unsigned)err >= sizeof names / sizeof names[0]) {
		return "unknown";
	}
	return names[err];
}
