import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';

/**
 * Creating an embedded database runs PGlite's initdb, which costs seconds of CPU; loading the
 * data directory initdb produces from a tarball costs a fraction of that. The first fresh database
 * of a PGlite version saves that pristine initdb output (before any migration: nothing of ours is
 * in it) in the user's cache directory; later fresh databases start from it. Private to the user
 * (0700 directory, 0600 file), written atomically. `PORTCULLIS_PGLITE_TEMPLATE=off` disables it.
 */
export async function createFreshPGlite(dataDir: string): Promise<PGlite> {
  const file = templateFile();
  if (file !== undefined && existsSync(file)) {
    try {
      return await PGlite.create(dataDir, { loadDataDir: new Blob([readFileSync(file)]) });
    } catch {
      // A damaged or foreign template: initdb as usual below (and replace it).
      rmSync(file, { force: true });
      if (!dataDir.startsWith('memory://')) rmSync(dataDir, { recursive: true, force: true });
      if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    }
  }
  const lite = await PGlite.create(dataDir);
  if (file !== undefined) await saveTemplate(lite, file).catch(() => undefined);
  return lite;
}

/** Whether a data directory holds no database yet (initdb would run). */
export function isFreshDataDir(dataDir: string): boolean {
  return dataDir.startsWith('memory://') || !existsSync(join(dataDir, 'PG_VERSION'));
}

async function saveTemplate(lite: PGlite, file: string): Promise<void> {
  const blob = await lite.dumpDataDir('gzip');
  const bytes = Buffer.from(await blob.arrayBuffer());
  const dir = join(file, '..');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, bytes, { mode: 0o600 });
  renameSync(temp, file);
}

function templateFile(): string | undefined {
  if (process.env.PORTCULLIS_PGLITE_TEMPLATE === 'off') return undefined;
  const version = pgliteVersion();
  if (version === undefined) return undefined;
  const cacheHome = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cacheHome, 'portcullis', `pglite-${version}-initdb.tar.gz`);
}

function pgliteVersion(): string | undefined {
  try {
    // The package exports no package.json: find it above the resolved entry point.
    let dir = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
    for (let i = 0; i < 5; i++) {
      const manifest = join(dir, 'package.json');
      if (existsSync(manifest)) {
        const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === '@electric-sql/pglite' && typeof pkg.version === 'string') return pkg.version;
      }
      dir = dirname(dir);
    }
    return undefined;
  } catch {
    return undefined;
  }
}
