/* SPDX-License-Identifier: MIT */
/* Clocks and RFC 3339 timestamps. Monotonic time measures durations
 * (timeouts, latency); Unix time stamps records and events, always written
 * in UTC with millisecond precision ("2026-11-21T21:48:01.123Z").
 * Calendar maths is done here without the C library's time zone machinery,
 * so every function is thread-safe and async-signal-safe. */
#ifndef AG_TIME_H
#define AG_TIME_H

#include "agora/base.h"
#include "agora/str.h"

/* Monotonic clock (CLOCK_MONOTONIC) in nanoseconds / milliseconds since an
 * unspecified start. Never goes backwards. Any thread. */
uint64_t ag_time_mono_ns(void);
uint64_t ag_time_mono_ms(void);

/* Wall clock (CLOCK_REALTIME) in milliseconds since 1970-01-01T00:00:00Z;
 * may jump. Any thread. */
int64_t ag_time_unix_ms(void);

/* Bytes needed by ag_time_rfc3339: "YYYY-MM-DDThh:mm:ss.mmmZ" and a NUL. */
#define AG_RFC3339_LEN 25

/* Write 'unix_ms' to 'out' as "YYYY-MM-DDThh:mm:ss.mmmZ" (UTC, always 24
 * characters, NUL-terminated). Negative values (before 1970) are supported.
 * Instants outside years 0000-9999 are clamped to the nearest end of that
 * range, since RFC 3339 has four-digit years. Any thread. */
void ag_time_rfc3339(int64_t unix_ms, char out[AG_RFC3339_LEN]);

/* Parse an RFC 3339 date-time (section 5.6) from the whole of 's':
 * "YYYY-MM-DD" 'T'|'t' "hh:mm:ss" ["." 1*DIGIT] ('Z'|'z'|('+'|'-') "hh:mm").
 * Fractional digits past milliseconds are truncated. The offset is applied,
 * so '*out_unix_ms' is UTC. Leap seconds (":60") are rejected because Unix
 * time cannot represent them.
 * Returns 0, or AG_EINVAL for anything malformed or out of range (month 13,
 * February 30, hour 24, offset hour 24, trailing bytes...); then
 * '*out_unix_ms' is untouched. Any thread. */
int ag_time_parse_rfc3339(struct ag_str s, int64_t *out_unix_ms);

/* Days since 1970-01-01 of the proleptic Gregorian date 'y'-'m'-'d'
 * (m 1-12, d 1-31, not validated), and back. Exposed for tests and for
 * modules that do date arithmetic. */
int64_t ag_time_days_from_civil(int64_t y, unsigned m, unsigned d);
void ag_time_civil_from_days(int64_t days, int64_t *out_y, unsigned *out_m, unsigned *out_d);

#endif /* AG_TIME_H */
