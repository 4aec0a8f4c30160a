/*
 * saga_lua.h - the Lua scripts behind every saga transition. One script, one atomic step; the
 * argument layouts are documented beside each script in saga_lua.c.
 */
#ifndef CR_SAGA_LUA_H
#define CR_SAGA_LUA_H

#include "store.h"

extern store_script_t saga_lua_begin;     /* take a saga for a run (fencing epoch) */
extern store_script_t saga_lua_commit;    /* status transition: step, park, delay or end */
extern store_script_t saga_lua_wake_due;  /* move due delayed sagas back to the stream */
extern store_script_t saga_lua_accept;    /* destination accepts a requested order */
extern store_script_t saga_lua_reconcile; /* re-queue unfinished sagas that lost their entry */
extern store_script_t saga_lua_retry;     /* re-run a saga that ended in error */
extern store_script_t saga_lua_reap;      /* delete idle consumers with nothing pending */
extern store_script_t saga_lua_touch;     /* keep the claims of long runs fresh */
extern store_script_t saga_lua_release;   /* runs Redis failed: their claims charge nothing */

#endif
