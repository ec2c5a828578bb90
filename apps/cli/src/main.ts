import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DataSource } from 'typeorm';
import { createApiKey, revokeApiKey, ROLES, type Role } from '@rxnotify/common/auth/api-keys';
import { CHAINS, verifyChain, verifyConsentEvidence } from '@rxnotify/common/audit/audit-chain';
import { ExportArgumentError, exportAudit, parseExportBound } from '@rxnotify/common/audit/audit-export';
import { ConfigError, loadConfig, type AppConfig } from '@rxnotify/common/config/config';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { rotateKeys } from '@rxnotify/common/crypto/rotate';
import { dataSourceOptions, migrate } from '@rxnotify/common/database/data-source';
import { purgeMessageBodies } from '@rxnotify/common/retention/retention';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function config(): AppConfig {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

async function withDatabase<T>(work: (db: DataSource, cfg: AppConfig) => Promise<T>): Promise<T> {
  const cfg = config();
  const db = await new DataSource(dataSourceOptions(cfg.database.url, 2)).initialize();
  try {
    return await work(db, cfg);
  } finally {
    await db.destroy();
  }
}

const uuid = (value: string) => {
  if (!UUID.test(value)) throw new InvalidArgumentError('must be a UUID');
  return value;
};

const program = new Command('rxnotify').description('rxnotify operator commands').showHelpAfterError();
program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));

program
  .command('migrate')
  .description('apply pending database migrations (creates the database if missing)')
  .action(async () => {
    const applied = await migrate(config().database.url);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
  });

const apiKey = program.command('api-key').description('manage API keys');
apiKey
  .command('create')
  .description('create a key; it is printed once, alone on the last line, and only its hash is stored')
  .addOption(new Option('--role <role>', 'what the key may do').choices(ROLES).makeOptionMandatory())
  .option('--pharmacy <id>', 'limit the key to one pharmacy (omit for every pharmacy)', uuid)
  .requiredOption('--label <text>', 'who or what the key is for')
  .action(async (options: { role: Role; pharmacy?: string; label: string }) => {
    if (!options.label.trim()) fail('--label must not be empty');
    await withDatabase(async (db) => {
      if (options.pharmacy) {
        const found = await db.query(`SELECT 1 FROM pharmacies WHERE id = $1`, [options.pharmacy]);
        if (found.length === 0) fail(`--pharmacy ${options.pharmacy} does not exist`);
      }
      const created = await createApiKey(db, {
        role: options.role,
        pharmacyId: options.pharmacy ?? null,
        label: options.label,
      });
      process.stdout.write(`created ${options.role} key ${created.id} (${options.label})\n${created.key}\n`);
    });
  });
apiKey
  .command('revoke <keyOrId>')
  .description('revoke a key, by the key itself or its id; it stops working on the next request')
  .action(async (keyOrId: string) => {
    await withDatabase(async (db) => {
      if (!(await revokeApiKey(db, keyOrId))) fail('no live key matches');
      process.stdout.write('revoked\n');
    });
  });

program
  .command('keys')
  .description('encryption keys')
  .command('rotate')
  .description('re-encrypt PHI under the first key of PHI_ENCRYPTION_KEYS, in batches, while the apps run')
  .action(async () => {
    await withDatabase(async (db, cfg) => {
      const counts = await rotateKeys(db, new KeyRing(cfg.phi.keys, cfg.phi.indexKey));
      process.stdout.write(`${JSON.stringify({ currentKey: cfg.phi.keys[0].id, rotated: counts })}\n`);
    });
  });

const audit = program.command('audit').description('audit evidence');
audit
  .command('verify')
  .description(
    'check every audit hash chain and every consent evidence against its MAC; exit 0 when intact, 1 naming the first broken row',
  )
  .action(async () => {
    await withDatabase(async (db, cfg) => {
      let intact = true;
      for (const chain of CHAINS) {
        const report = await verifyChain(db, chain);
        if (report.broken) {
          intact = false;
          process.stdout.write(
            `${chain}: BROKEN at id ${report.broken.id} (seq ${report.broken.seq}): ${report.broken.problem}\n`,
          );
        } else {
          process.stdout.write(`${chain}: intact, ${report.rows} rows, head ${report.head}\n`);
        }
      }
      const evidence = await verifyConsentEvidence(db, new KeyRing(cfg.phi.keys, cfg.phi.indexKey));
      if (evidence) {
        intact = false;
        process.stdout.write(
          `consent_evidence: BROKEN at consent event id ${evidence.id} (seq ${evidence.seq}): ${evidence.problem}\n`,
        );
      } else {
        process.stdout.write('consent_evidence: intact\n');
      }
      if (!intact) process.exitCode = 1;
    });
  });

/** A commander option parser: the value, normalized, or a clear error naming the option. */
const bound = (which: 'from' | 'to') => (value: string) => {
  try {
    return parseExportBound(value, which);
  } catch (error) {
    if (error instanceof ExportArgumentError)
      throw new InvalidArgumentError(error.message.replace(`--${which} `, ''));
    throw error;
  }
};

audit
  .command('export')
  .description(
    'write the evidence for an auditor: consent_events.jsonl, message_attempts.jsonl, access_log.jsonl and manifest.json ' +
      '(SHA-256 and row count of each file, chain heads, verification). The files hold PHI.',
  )
  .requiredOption(
    '--from <date>',
    'first day (YYYY-MM-DD, UTC) or instant (ISO 8601; no offset means UTC), inclusive',
    bound('from'),
  )
  .requiredOption(
    '--to <date>',
    'last day (YYYY-MM-DD, UTC, the whole day) or instant (ISO 8601), inclusive',
    bound('to'),
  )
  .requiredOption(
    '--out <dir>',
    'directory to write to; created if missing; existing files are never overwritten',
  )
  .action(async (options: { from: string; to: string; out: string }) => {
    if (options.from > options.to) fail('--from must not be after --to');
    if (!options.out.trim()) fail('--out must not be empty');
    // `npm run` runs in the package root; a relative --out means the directory the operator typed it in.
    const outDir = resolve(process.env.INIT_CWD ?? process.cwd(), options.out);
    await withDatabase(async (db, cfg) => {
      try {
        const manifest = await exportAudit(db, new KeyRing(cfg.phi.keys, cfg.phi.indexKey), {
          range: { from: options.from, to: options.to },
          outDir,
        });
        for (const [name, file] of Object.entries(manifest.files)) {
          process.stdout.write(`${name}: ${file.rows} rows, sha256 ${file.sha256}\n`);
        }
        for (const [chain, { verify }] of Object.entries(manifest.chains)) {
          if (verify.broken) {
            process.exitCode = 1;
            process.stderr.write(
              `${chain}: BROKEN at id ${verify.broken.id} (seq ${verify.broken.seq}): ${verify.broken.problem} (recorded in the manifest)\n`,
            );
          }
        }
        process.stdout.write(`written to ${outDir} (manifest.json lists the files and their SHA-256)\n`);
      } catch (error) {
        if (error instanceof ExportArgumentError) fail(error.message);
        throw error;
      }
    });
  });

program
  .command('retention')
  .description('data retention')
  .command('purge')
  .description(
    'erase the text of messages older than MESSAGE_BODY_RETENTION_DAYS, in batches, while the apps run; ' +
      'metadata and audit records are kept (audit records are never deleted)',
  )
  .action(async () => {
    await withDatabase(async (db, cfg) => {
      const report = await purgeMessageBodies(db, {
        bodyRetentionDays: cfg.retention.messageBodyDays,
        now: new Date(),
      });
      process.stdout.write(
        `${JSON.stringify({
          ...report,
          messageBodyRetentionDays: cfg.retention.messageBodyDays,
          auditRetentionYears: cfg.retention.auditYears,
          auditRecordsDeleted: 0,
        })}\n`,
      );
    });
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  fail(error instanceof Error ? error.message : 'unexpected failure');
});
