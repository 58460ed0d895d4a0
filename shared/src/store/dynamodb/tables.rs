//! The table definitions `authctl local-setup` and the tests create.

use super::*;

/// Whether `table` exists, asked by name: `ListTables` answers 100 names a page, so in an
/// account (or emulator) with more tables ours may be on a later page.
async fn table_exists(client: &Client, table: &str) -> Result<bool, AuthError> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
        Err(e) => Err(sdk_error("DescribeTable", e)),
    }
}

/// Creates the users and sessions tables (on-demand, TTL on `expires_at`, the `by_user`
/// index) where they do not exist. Returns a line for each change made; empty when
/// everything was already in place.
pub async fn create_tables(client: &Client, users_table: &str, sessions_table: &str) -> Result<Vec<String>, AuthError> {
    let mut changes = Vec::new();
    let key = |name: &str, kind, scalar| -> Result<(AttributeDefinition, KeySchemaElement), AuthError> {
        Ok((
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(scalar)
                .build()
                .map_err(|e| AuthError::unavailable("table definition", e))?,
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| AuthError::unavailable("table definition", e))?,
        ))
    };
    if !table_exists(client, users_table).await? {
        let (attr, schema) = key("username", KeyType::Hash, ScalarAttributeType::S)?;
        client
            .create_table()
            .table_name(users_table)
            .attribute_definitions(attr)
            .key_schema(schema)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| sdk_error("CreateTable users", e))?;
        changes.push(format!("created table {users_table}"));
    }
    if !table_exists(client, sessions_table).await? {
        let (session_attr, session_schema) = key("session_id", KeyType::Hash, ScalarAttributeType::S)?;
        let (user_attr, user_schema) = key("user_id", KeyType::Hash, ScalarAttributeType::S)?;
        let (created_attr, created_schema) = key("created_at", KeyType::Range, ScalarAttributeType::N)?;
        let index = GlobalSecondaryIndex::builder()
            .index_name(BY_USER_INDEX)
            .key_schema(user_schema)
            .key_schema(created_schema)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(|e| AuthError::unavailable("table definition", e))?;
        client
            .create_table()
            .table_name(sessions_table)
            .attribute_definitions(session_attr)
            .attribute_definitions(user_attr)
            .attribute_definitions(created_attr)
            .key_schema(session_schema)
            .global_secondary_indexes(index)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| sdk_error("CreateTable sessions", e))?;
        changes.push(format!("created table {sessions_table} with index {BY_USER_INDEX}"));
    }
    for table in [users_table, sessions_table] {
        let ttl = client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
        let enabled = ttl.time_to_live_description().and_then(|d| d.attribute_name()) == Some("expires_at");
        if !enabled {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .map_err(|e| AuthError::unavailable("TTL definition", e))?;
            client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
            changes.push(format!("enabled TTL on {table}.expires_at"));
        }
    }
    Ok(changes)
}
