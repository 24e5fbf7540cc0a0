/**
 * Deliberately broken behaviours, modelled on real field failures. A test-only switch: the simulator
 * proves its power by catching every one of them. Production code never sets it (the CLI refuses to).
 */
export const MUTANTS = {
  'delete-by-name':
    'remove the engine image of a row by name, ignoring other rows that reference its ID (balena #1434)',
  'untag-last-reference': "remove every reference of a row's image even when other rows still need the image",
  'skip-startup-cleanup': 'do not run startup cleanup after a restart (balena #1616)',
  'skip-repair': 'startup cleanup deletes a row whose image is present instead of repairing its ID',
  'idle-cleanup-during-pull': 'run idle cleanup while a pull or delta is in flight',
  'drop-delta-source': 'do not protect the delta source of a pending fetch (balena #1631)',
  'delta-from-other-service': "pick another service's image of the same app as delta source (balena #1729)",
  'ignore-digest': 'download again an image whose digest is already present',
  'digest-only-dangling': 'treat an image pulled by digest only (no tags) as dangling (moby#42664)',
  'row-before-engine-delete': 'delete the last row before the engine image, so a cut leaks the image',
  'pull-before-row':
    "pull before storing the row (balena's current order): a cut in between leaves an image no row owns",
  'ignore-stopped-containers': 'an image used only by a stopped container counts as unneeded',
  'ignore-dependent': 'images of dependent apps are not protected',
  'remove-during-intermediate': 'intermediate targets remove images (balena #1611)',
  'unknown-target-is-empty':
    'an unknown target (none persisted) is treated as an empty one (greengrass #1819)',
  'fetch-before-delete':
    'delete-then-download fetches the new image before the old one is removed (balena #1233)',
  'kill-before-ready':
    "download-then-kill switches a service before all of the app's images are ready (balena #1812)",
  'duplicate-rows': 'store a new row for a target image even when its row already exists (balena #2538)',
  'save-by-repository':
    'identify images by repository, as tag-based tracking does: another digest of the same repository counts as present and is saved, not fetched',
  'untag-others-reference':
    "when a row goes, remove every reference with its digest, also those other rows' names stand for",
  'delta-from-other-app':
    "with no source of its own, take the same-named service's image of another app as delta source",
  'startup-prunes-layers':
    'prune unused layers at startup (an image prune at boot), throwing away what interrupted pulls completed',
} as const;

export type Mutant = keyof typeof MUTANTS;

export function isMutant(value: string): value is Mutant {
  return Object.hasOwn(MUTANTS, value);
}
