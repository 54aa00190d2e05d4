/* runcli.h — the `meshcdn-load run` command: options, the workload, the
 * run (run.h), and the reports (report.h).
 *
 * Exit status: 0 the run completed (errors it counted are in the report),
 * 1 the work failed (a target that does not resolve, a failed scrape, a
 * report that cannot be written), 2 bad usage.
 * Threads: call from main only (getopt state).
 */
#ifndef MC_LOAD_RUNCLI_H
#define MC_LOAD_RUNCLI_H

/* argv[0] is "run". */
int mc_runcli_main(int argc, char **argv);

#endif
