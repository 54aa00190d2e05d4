/* simulate.h — the `meshcdn-load simulate` command: options, building the
 * request sequence (trace file, or catalog index + Zipf/uniform), running
 * every policy of sim.h and printing a table (and JSON with --json).
 *
 * Exit status: 0 done, 1 the work failed (I/O, memory), 2 bad usage.
 * Threads: call from main only (getopt state).
 */
#ifndef MC_LOAD_SIMULATE_H
#define MC_LOAD_SIMULATE_H

/* argv[0] is "simulate". */
int mc_simulate_main(int argc, char **argv);

#endif
