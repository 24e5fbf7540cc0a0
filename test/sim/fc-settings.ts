/**
 * One place for the simulator's knobs from the environment, so CI, a soak and a replay use the same
 * names: FC_SEED (default: fixed, so CI is reproducible), FC_NUM_RUNS, FC_PATH.
 */
export const FC_SEED = Number(process.env['FC_SEED'] ?? 20261203);
export const FC_NUM_RUNS = Number(process.env['FC_NUM_RUNS'] ?? 400);
export const FC_PATH = process.env['FC_PATH'];
