/* render.h — meshcdnctl's readable output, from the server's JSON answers.
 *
 * Tables are column-aligned (each column as wide as its widest cell, two
 * spaces apart); a member that is missing or null prints as "-", so an
 * answer with fields this version does not know still prints. No I/O except
 * the FILE* the caller passes; no globals (tests/unit/test_ctl.c).
 */
#ifndef MC_CTL_RENDER_H
#define MC_CTL_RENDER_H

#include <stddef.h>
#include <stdio.h>
#include <jansson.h>
#include "ctl/cmd.h"

/* "I12  InProgress  2 paths, 1 key, soft" — a created invalidation, counted
 * from what was sent (the answer has no lists). */
void mc_ctl_print_created(FILE *f, const json_t *answer, const mc_ctl_opts *o);
/* An invalidation's status: a header line, its paths/keys, then the edges
 * table (NODE REGION STATE ACKED LAST SEEN). */
void mc_ctl_print_status(FILE *f, const json_t *inv);
/* GET /invalidations: ID CREATED STATUS WHAT. */
void mc_ctl_print_list(FILE *f, const json_t *answer);
/* GET /edges: NODE REGION STATE ACKED LAST SEEN. */
void mc_ctl_print_edges(FILE *f, const json_t *answer);
/* POST /purge: "purged 3 objects" (" (soft: marked stale)" when soft). */
void mc_ctl_print_purged(FILE *f, const json_t *answer);

/* Count of edges in an invalidation's status whose state is `state`; the
 * names of the first few go to names (", "-joined, may be NULL). */
int mc_ctl_count_edges(const json_t *inv, const char *state, char *names, size_t nameslen);

#endif
