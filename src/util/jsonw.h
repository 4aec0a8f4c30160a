/*
 * jsonw.h - compact JSON text of a jansson value, fast: the same bytes as json_dumps.
 *
 * jansson's json_dumps spends most of its time per character (a UTF-8 decode and a callback per
 * code point) and per container (a loop-detection table keyed by a printed pointer); on the
 * intake and saga paths it was a quarter of the gateway's instructions. These write straight
 * into a buffer, copying runs of plain ASCII at once, and give exactly what json_dumps gives
 * for the same flags - the request fingerprint and every stored document depend on that.
 *
 * Flags: JSON_COMPACT, optionally JSON_SORT_KEYS and JSON_ENCODE_ANY; any other flag is handed
 * to json_dumps. Reals are formatted by jansson. Like json_dumps, a string value that is not
 * UTF-8 fails the whole text (NULL / -1) - so does an object key that is not (json_dumps writes
 * a broken text for one; keys that jansson parsed are always UTF-8), and so does a top-level value that is not an object or an
 * array without JSON_ENCODE_ANY. Values nested deeper than JSONW_MAX_DEPTH fail too (jansson
 * refuses cycles; a tree that deep is refused here instead of walked).
 */
#ifndef CR_JSONW_H
#define CR_JSONW_H

#include "util/buf.h"

#include <jansson.h>

#define JSONW_MAX_DEPTH 2048

/* malloc'd text (free() it), or NULL. */
char *jsonw_dumps(const json_t *json, size_t flags);

/* Append the text to b: 0, or -1 with b back at its length before the call. */
int jsonw_append(buf_t *b, const json_t *json, size_t flags);

#endif
