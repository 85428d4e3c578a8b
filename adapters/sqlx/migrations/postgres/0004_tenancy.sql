-- Tenancy on every table: documents, idempotency keys and scheduled command ids are per
-- tenant ('' for none), so two tenants never overwrite or refuse each other's rows.
ALTER TABLE {schema}.documents ADD COLUMN IF NOT EXISTS tenant_id TEXT NOT NULL DEFAULT '';
ALTER TABLE {schema}.documents DROP CONSTRAINT IF EXISTS documents_pkey;
ALTER TABLE {schema}.documents ADD CONSTRAINT documents_pkey PRIMARY KEY (tenant_id, collection, id);

ALTER TABLE {schema}.processed_commands ADD COLUMN IF NOT EXISTS tenant_id TEXT NOT NULL DEFAULT '';
ALTER TABLE {schema}.processed_commands DROP CONSTRAINT IF EXISTS processed_commands_key;
ALTER TABLE {schema}.processed_commands ADD CONSTRAINT processed_commands_key PRIMARY KEY (tenant_id, key);

ALTER TABLE {schema}.scheduled_commands DROP CONSTRAINT IF EXISTS scheduled_commands_pkey;
ALTER TABLE {schema}.scheduled_commands ADD CONSTRAINT scheduled_commands_pkey PRIMARY KEY (tenant_id, id);
