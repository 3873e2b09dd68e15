from tortoise import migrations
from tortoise.migrations import operations as ops

# Admission of a creation against its owner's daily token quota in one round trip
# (resolvers/access/limits.py): lock the owner's row, count the day, insert the row if its
# reservation fits, all in the one statement that calls it. A VOLATILE function's queries
# each take a fresh snapshot under READ COMMITTED, so the count sees every admission that
# held the lock before. Returns the tokens the day had counted before this one.
#
# Its transaction commits without waiting for the WAL flush (synchronous_commit off, for this
# transaction only: it is the single statement that calls the function). That flush took
# about 0.9 ms of every first token on our benches. What it risks: a database crash within a
# fraction of a second (wal_writer_delay, 200 ms by default) of an admission may forget that
# creation's row and reservation (its stream goes on through Redis, but its row is gone when
# the run ends). The database stays consistent, and any later commit on the server flushes
# the admission with it.
_ADMIT = """
CREATE OR REPLACE FUNCTION ck_admit_creation(p_row jsonb, p_since timestamptz, p_per_day bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_owner uuid := (p_row->>'owner_id')::uuid;
    spent bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM users WHERE id = v_owner FOR NO KEY UPDATE;
    SELECT COALESCE(SUM(CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED')
                             THEN completion_tokens ELSE reserved_tokens END), 0)
      INTO spent FROM creations WHERE owner_id = v_owner AND created_at >= p_since;
    IF spent + (p_row->>'reserved_tokens')::bigint <= p_per_day THEN
        INSERT INTO creations SELECT * FROM jsonb_populate_record(NULL::creations, p_row);
    END IF;
    RETURN spent;
END $$
"""


async def create_admit(apps, schema_editor):
    """Postgres only: embedded SQLite admits in a transaction of its own connection."""
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script(_ADMIT)


async def drop_admit(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script("DROP FUNCTION IF EXISTS ck_admit_creation(jsonb, timestamptz, bigint)")


class Migration(migrations.Migration):
    dependencies = [('models', '0010_creation_model_name')]

    initial = False

    operations = [
        ops.RunPython(create_admit, drop_admit),
    ]
