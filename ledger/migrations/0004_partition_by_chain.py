"""Partition the ledger's history by chain (one chain per program year): see docs/ledger-history.md.

`ledger_transfer` and `ledger_transferseal` become tables partitioned by LIST (chain), with a
partition for every chain they hold and a DEFAULT partition; their rows are copied across in id
order (every column in the same order, so each row reads the same byte for byte), the old tables
dropped. What a partitioned table cannot keep is kept otherwise:

- the primary key becomes (id, chain) in the database (a unique index must hold the partition key);
  ids still come from one sequence for every partition, so Django keeps `id` as the primary key;
- the unique idempotency key moves to `ledger_transferkey` (key PRIMARY KEY, transfer_id UNIQUE,
  chain), filled by a trigger on every insert into `ledger_transfer`, under the constraint name
  the services already read (`ledger_transfer_key_unique`);
- foreign keys to a transfer's id: a pending transfer's resolution and a seal name their transfer
  in the same chain, checked by BEFORE INSERT triggers (the rows are insert-only, so what the
  trigger found cannot go away); a foreign key from another app's table (a coupon hold) is
  re-pointed at `ledger_transferkey(transfer_id)`, whose rows exist exactly for the transfers made;
- the insert-only triggers are made on the parent tables, which PostgreSQL clones onto every
  partition, present and future.

One way: going back would need the id unique again across chains, which it is, but an archived
chain's rows are gone; rebuild from a dump instead.
"""

import hashlib
import re

import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

DEFAULT_CHAIN = "ledger"


def _partition_name(table, chain):
    """Frozen here as ledger.partitions.partition_name was when this migration was written."""
    readable = re.sub(r"[^a-z0-9]+", "_", chain.lower()).strip("_")[:24]
    return f"{table}_{readable}_{hashlib.sha256(chain.encode()).hexdigest()[:8]}"


GUARDS = """
-- A unique violation names the partition's index: each is named after its parent's, so the name
-- starts with the constraint's (the services and the tests read it).
CREATE FUNCTION ledger_partition_indexes_name(part regclass, suffix text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    child record;
BEGIN
    FOR child IN
        SELECT c.relname AS name, left(p.relname || '_' || suffix, 63) AS wanted
          FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
          JOIN pg_inherits i ON i.inhrelid = x.indexrelid JOIN pg_class p ON p.oid = i.inhparent
         WHERE x.indrelid = part
    LOOP
        IF child.name <> child.wanted THEN
            EXECUTE format('ALTER INDEX %I RENAME TO %I', child.name, child.wanted);
        END IF;
    END LOOP;
END $$;
CREATE FUNCTION ledger_transfer_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- What the foreign key pending_id -> id did: a resolution names a pending transfer, of its own chain.
    IF NEW.pending_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM ledger_transfer p WHERE p.id = NEW.pending_id AND p.chain = NEW.chain AND p.kind = 'pending'
    ) THEN
        RAISE EXCEPTION 'ledger_transfer_pending_exists: pending_id % names no pending transfer of chain %', NEW.pending_id, NEW.chain
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_transfer_pending_exists';
    END IF;
    -- The idempotency key, unique across every partition (the constraint ledger_transfer_key_unique).
    INSERT INTO ledger_transferkey (key, transfer_id, chain) VALUES (NEW.key, NEW.id, NEW.chain);
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_transfer_guard BEFORE INSERT ON ledger_transfer
    FOR EACH ROW EXECUTE FUNCTION ledger_transfer_guard();

CREATE FUNCTION ledger_transferseal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- What the foreign key transfer_id -> id did, and more: the transfer is of the seal's chain.
    IF NOT EXISTS (SELECT 1 FROM ledger_transfer t WHERE t.id = NEW.transfer_id AND t.chain = NEW.chain) THEN
        RAISE EXCEPTION 'ledger_transferseal_transfer_exists: seal names transfer % of chain %, which does not exist', NEW.transfer_id, NEW.chain
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_transferseal_transfer_exists';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_transferseal_guard BEFORE INSERT ON ledger_transferseal
    FOR EACH ROW EXECUTE FUNCTION ledger_transferseal_guard();

CREATE FUNCTION ledger_transferkey_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only the transfer's own trigger writes a key (depth 2: this trigger inside that one), so no
    -- key names a transfer that was never made.
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'ledger_transferkey_with_its_transfer: a transfer key is written by inserting its transfer'
            USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'ledger_transferkey_with_its_transfer';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_transferkey_guard BEFORE INSERT ON ledger_transferkey
    FOR EACH ROW EXECUTE FUNCTION ledger_transferkey_guard();
"""


def _fetch(cursor, sql, params=None):
    cursor.execute(sql, params or [])
    return cursor.fetchall()


def partition(apps, schema_editor):
    """Rebuild the two tables partitioned, in one transaction (the migration's)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("LOCK TABLE ledger_transfer, ledger_transferseal IN ACCESS EXCLUSIVE MODE")
        # What to rebuild: other tables' foreign keys to a transfer, this table's foreign keys to
        # accounts, the insert-only triggers (pgtrigger's, with their comments), the sequence.
        outside = _fetch(
            cursor,
            """
            SELECT c.conrelid::regclass::text, a.attname
              FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             WHERE c.contype = 'f' AND c.confrelid = 'ledger_transfer'::regclass
               AND c.conrelid NOT IN ('ledger_transfer'::regclass, 'ledger_transferseal'::regclass)
             ORDER BY 1, 2
            """,
        )
        to_accounts = _fetch(
            cursor,
            """
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE contype = 'f' AND conrelid = 'ledger_transfer'::regclass AND confrelid = 'ledger_account'::regclass
             ORDER BY conname
            """,
        )
        triggers = _fetch(
            cursor,
            """
            SELECT pg_get_triggerdef(oid), tgname, tgrelid::regclass::text, obj_description(oid, 'pg_trigger')
              FROM pg_trigger
             WHERE tgrelid IN ('ledger_transfer'::regclass, 'ledger_transferseal'::regclass) AND NOT tgisinternal
            """,
        )
        ((sequence,),) = _fetch(cursor, "SELECT pg_get_serial_sequence('ledger_transfer', 'id')")
        ((last_value, is_called),) = _fetch(cursor, f"SELECT last_value, is_called FROM {sequence}")
        chains = [
            chain
            for (chain,) in _fetch(
                cursor,
                "SELECT chain FROM ledger_transfer UNION SELECT chain FROM ledger_chainhead "
                "UNION SELECT %s ORDER BY 1",
                [DEFAULT_CHAIN],
            )
        ]

        for table in ("ledger_transfer", "ledger_transferseal"):
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_0003")
            # Same columns in the same order, their NOT NULLs, defaults and CHECK constraints (by name).
            cursor.execute(
                f"CREATE TABLE {table} (LIKE {table}_0003 INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
                "PARTITION BY LIST (chain)"
            )
            for chain in chains:
                cursor.execute(
                    f'CREATE TABLE "{_partition_name(table, chain)}" PARTITION OF {table} FOR VALUES IN (%s)', [chain]
                )
            cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {table}_0003 ORDER BY 1")
        cursor.execute("INSERT INTO ledger_transferkey (key, transfer_id, chain) SELECT key, id, chain FROM ledger_transfer")
        cursor.execute("DROP TABLE ledger_transferseal_0003")
        cursor.execute("DROP TABLE ledger_transfer_0003 CASCADE")  # And the foreign keys that named it.
        # The name the services read in a duplicate key's error, now the key table's.
        cursor.execute("ALTER TABLE ledger_transferkey RENAME CONSTRAINT ledger_transferkey_pkey TO ledger_transfer_key_unique")

        cursor.execute("CREATE SEQUENCE ledger_transfer_id_seq AS bigint OWNED BY ledger_transfer.id")
        cursor.execute("ALTER TABLE ledger_transfer ALTER COLUMN id SET DEFAULT nextval('ledger_transfer_id_seq')")
        cursor.execute("SELECT setval('ledger_transfer_id_seq', %s, %s)", [last_value, is_called])

        for sql in (
            "ALTER TABLE ledger_transfer ADD CONSTRAINT ledger_transfer_pkey PRIMARY KEY (id, chain)",
            "CREATE INDEX ledger_transfer_debit_time ON ledger_transfer (debit_account_id, created_at, id)",
            "CREATE INDEX ledger_transfer_credit_time ON ledger_transfer (credit_account_id, created_at, id)",
            "CREATE INDEX ledger_transfer_pending_expiry ON ledger_transfer (expires_at) "
            "WHERE expires_at IS NOT NULL AND kind = 'pending'",
            "CREATE INDEX ledger_transfer_key ON ledger_transfer (key)",
            "CREATE UNIQUE INDEX ledger_transfer_pending_resolved_once ON ledger_transfer (pending_id, chain) "
            "WHERE pending_id IS NOT NULL",
            "ALTER TABLE ledger_transferseal ADD CONSTRAINT ledger_transferseal_pkey PRIMARY KEY (transfer_id, chain)",
            "ALTER TABLE ledger_transferseal ADD CONSTRAINT ledger_seal_sequence_per_chain UNIQUE (chain, sequence)",
        ):
            cursor.execute(sql)
        for name, definition in to_accounts:
            cursor.execute(f'ALTER TABLE ledger_transfer ADD CONSTRAINT "{name}" {definition}')
        for table, column in outside:
            cursor.execute(
                f'ALTER TABLE {table} ADD CONSTRAINT "{f"{table}_{column}_fk_ledger_transferkey"[:63]}" '
                f"FOREIGN KEY ({column}) REFERENCES ledger_transferkey (transfer_id) DEFERRABLE INITIALLY DEFERRED"
            )
        for definition, name, table, comment in triggers:
            # Made on the parent, PostgreSQL clones each onto every partition, present and future.
            cursor.execute(definition)
            if comment is not None:
                cursor.execute(f'COMMENT ON TRIGGER "{name}" ON {table} IS %s', [comment])
        cursor.execute(GUARDS)
        for table in ("ledger_transfer", "ledger_transferseal"):
            for chain in chains:
                suffix = hashlib.sha256(chain.encode()).hexdigest()[:8]
                cursor.execute(
                    "SELECT ledger_partition_indexes_name(%s::regclass, %s)", [_partition_name(table, chain), suffix]
                )
            cursor.execute("SELECT ledger_partition_indexes_name(%s::regclass, 'default')", [f"{table}_default"])



class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0003_chainhead_chain_transfer_chain_transferseal_chain_and_more'),
    ]

    operations = [
        migrations.CreateModel(
            name='ArchivedTotals',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('chain', models.CharField(max_length=32)),
                ('debits_posted', models.BigIntegerField()),
                ('credits_posted', models.BigIntegerField()),
                ('debits_pending', models.BigIntegerField()),
                ('credits_pending', models.BigIntegerField()),
                ('first_at', models.DateTimeField()),
                ('last_at', models.DateTimeField()),
                ('last_id', models.BigIntegerField()),
                ('after_debits_pending', models.BigIntegerField()),
                ('after_debits_posted', models.BigIntegerField()),
                ('after_credits_pending', models.BigIntegerField()),
                ('after_credits_posted', models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name='ChainArchive',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('chain', models.CharField(max_length=32, unique=True)),
                ('archived_at', models.DateTimeField(auto_now_add=True)),
                ('transfers', models.BigIntegerField()),
                ('first_id', models.BigIntegerField(null=True)),
                ('last_id', models.BigIntegerField(null=True)),
                ('head_sequence', models.BigIntegerField()),
                ('head_link', models.CharField(max_length=64)),
                ('manifest', models.JSONField()),
                ('manifest_sha256', models.CharField(max_length=64)),
                ('dropped', models.BooleanField(default=False, help_text='The detached tables were dropped (--drop).')),
            ],
        ),
        migrations.CreateModel(
            name='TransferKey',
            fields=[
                ('key', models.CharField(max_length=200, primary_key=True, serialize=False)),
                ('transfer_id', models.BigIntegerField(unique=True)),
                ('chain', models.CharField(max_length=32)),
            ],
        ),
        migrations.AddField(
            model_name='archivedtotals',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.account'),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='transferkey',
            trigger=pgtrigger.compiler.Trigger(name='transfer_key_insert_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;", hash='dcb958c7fb1fb36e57d774b2d6297ddc350f35dd', operation='UPDATE OR DELETE', pgid='pgtrigger_transfer_key_insert_only_9319a', table='ledger_transferkey', when='BEFORE')),
        ),
        migrations.AddConstraint(
            model_name='archivedtotals',
            constraint=models.UniqueConstraint(fields=('account', 'chain'), name='ledger_archivedtotals_once'),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='archivedtotals',
            trigger=pgtrigger.compiler.Trigger(name='archived_totals_insert_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;", hash='816fa4ca4a6b41d5c7423b3eaa6579cb05970c91', operation='UPDATE OR DELETE', pgid='pgtrigger_archived_totals_insert_only_140ab', table='ledger_archivedtotals', when='BEFORE')),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name='transfer',
                    name='ledger_transfer_key_unique',
                ),
                migrations.RemoveConstraint(
                    model_name='transfer',
                    name='ledger_transfer_pending_resolved_once',
                ),
                migrations.AlterField(
                    model_name='transfer',
                    name='pending',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, help_text='The pending transfer resolved.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.transfer'),
                ),
                migrations.AlterField(
                    model_name='transferseal',
                    name='transfer',
                    field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='+', serialize=False, to='ledger.transfer'),
                ),
                migrations.AddIndex(
                    model_name='transfer',
                    index=models.Index(fields=['key'], name='ledger_transfer_key'),
                ),
                migrations.AddConstraint(
                    model_name='transfer',
                    constraint=models.UniqueConstraint(condition=models.Q(('pending__isnull', False)), fields=('pending', 'chain'), name='ledger_transfer_pending_resolved_once'),
                ),
            ],
            database_operations=[migrations.RunPython(partition, elidable=False)],
        ),
    ]
