//! The call recorder the tests and benchmarks count AWS calls with, and check
//! `template.yaml`'s grants against: each call as IAM authorizes it, with what its
//! item-level condition keys see. Never installed in the Lambdas.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_config::SdkConfig;

/// One AWS call: which service, which operation, and the table, index or secret it named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SdkCall {
    /// `dynamodb` or `secretsmanager`.
    pub service: String,
    /// The API operation, e.g. `UpdateItem`.
    pub operation: String,
    /// Table name, `table/index/name`, or secret id.
    pub resource: String,
    /// For DynamoDB's single-item calls, what IAM's item-level condition keys see.
    pub item: Option<ItemAccess>,
}

/// What IAM's item-level condition keys are computed from in a GetItem, PutItem, UpdateItem,
/// DeleteItem or each table of a BatchGetItem: the key's value and attribute names, never another value (a PutItem's item
/// holds a password hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemAccess {
    /// The partition key's value (`dynamodb:LeadingKeys`): a username, `throttle#<username>`
    /// or a session id.
    pub partition_key: Option<String>,
    /// The top-level attributes the request names (`dynamodb:Attributes`): the key's, a
    /// PutItem's item's, every name in `ExpressionAttributeNames`, and those its update,
    /// condition and projection expressions name outright. Errs towards naming too many.
    pub attributes: BTreeSet<String>,
    /// `ReturnValues`, when the request sets it (`dynamodb:ReturnValues`).
    pub return_values: Option<String>,
    /// Of a read: `SPECIFIC_ATTRIBUTES` when it projects, else `ALL_ATTRIBUTES`
    /// (`dynamodb:Select`).
    pub select: Option<String>,
}

impl SdkCall {
    /// The IAM action this call needs, e.g. `dynamodb:UpdateItem`.
    pub fn iam_action(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }
}

/// Records every call a client makes, once per operation (retries not counted), a
/// BatchGetItem once per table it reads and a TransactWriteItems once per item it writes or
/// checks (as the single-item action it is to IAM), as IAM authorizes them. Used by
/// the tests that check `template.yaml` grants exactly what the code calls, and by the
/// call-count benchmark; never installed in the Lambdas.
#[derive(Debug, Clone, Default)]
pub struct CallRecorder(Arc<std::sync::Mutex<Vec<SdkCall>>>);

impl CallRecorder {
    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<SdkCall> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// An SES v2 client over `sdk` that reports to this recorder.
    pub fn ses_client(&self, sdk: &SdkConfig) -> aws_sdk_sesv2::Client {
        aws_sdk_sesv2::Client::from_conf(aws_sdk_sesv2::config::Builder::from(sdk).interceptor(self.clone()).build())
    }

    /// A DynamoDB and a Secrets Manager client over `sdk` that report to this recorder.
    pub fn clients(&self, sdk: &SdkConfig) -> (aws_sdk_dynamodb::Client, aws_sdk_secretsmanager::Client) {
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(self.clone()).build();
        let secrets = aws_sdk_secretsmanager::config::Builder::from(sdk).interceptor(self.clone()).build();
        (
            aws_sdk_dynamodb::Client::from_conf(dynamodb),
            aws_sdk_secretsmanager::Client::from_conf(secrets),
        )
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    // Not `read_before_execution`: for client-level interceptors that runs before the
    // operation's metadata is in the config bag. This hook runs once per operation too.
    fn read_before_serialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(metadata) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            let input = context.input();
            let targets = match (batch_get_targets(input), transact_targets(input)) {
                (Some(targets), _) => targets.into_iter().map(|(resource, item)| (metadata.name(), resource, item)).collect(),
                (None, Some(targets)) => targets,
                (None, None) => vec![(metadata.name(), resource_of(input), item_access(input))],
            };
            let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for (operation, resource, item) in targets {
                calls.push(SdkCall {
                    // "DynamoDB" → "dynamodb", "Secrets Manager" → "secretsmanager", "SESv2"
                    // → "ses": the IAM prefixes.
                    service: metadata.service().to_ascii_lowercase().replace(" ", "").replace("sesv2", "ses"),
                    operation: operation.to_owned(),
                    resource,
                    item,
                });
            }
        }
        Ok(())
    }
}

/// The table, index or secret an operation input names (the operations this project uses).
fn resource_of(input: &aws_smithy_runtime_api::client::interceptors::context::Input) -> String {
    use aws_sdk_dynamodb::operation::{delete_item, get_item, put_item, query, update_item};
    if let Some(i) = input.downcast_ref::<get_item::GetItemInput>() {
        return i.table_name().unwrap_or_default().to_owned();
    }
    if let Some(i) = input.downcast_ref::<delete_item::DeleteItemInput>() {
        return i.table_name().unwrap_or_default().to_owned();
    }
    if let Some(i) = input.downcast_ref::<put_item::PutItemInput>() {
        return i.table_name().unwrap_or_default().to_owned();
    }
    if let Some(i) = input.downcast_ref::<update_item::UpdateItemInput>() {
        return i.table_name().unwrap_or_default().to_owned();
    }
    if let Some(i) = input.downcast_ref::<query::QueryInput>() {
        let table = i.table_name().unwrap_or_default();
        return match i.index_name() {
            Some(index) => format!("{table}/index/{index}"),
            None => table.to_owned(),
        };
    }
    if input.downcast_ref::<aws_sdk_sesv2::operation::send_email::SendEmailInput>().is_some() {
        // IAM authorizes a send against the sender's identity, which the template names.
        return String::from("ses:identity");
    }
    if let Some(i) = input.downcast_ref::<aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput>() {
        return i.secret_id().unwrap_or_default().to_owned();
    }
    String::from("?")
}

/// A BatchGetItem as IAM authorizes it: once per table, each with what its item-level
/// condition keys see (one key per table in this project's batches). `None` for any other
/// operation.
fn batch_get_targets(input: &aws_smithy_runtime_api::client::interceptors::context::Input) -> Option<Vec<(String, Option<ItemAccess>)>> {
    let batch = input.downcast_ref::<aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput>()?;
    let mut targets: Vec<(String, Option<ItemAccess>)> = batch
        .request_items()
        .into_iter()
        .flatten()
        .map(|(table, request)| {
            let key = request.keys().first();
            let legacy = request.attributes_to_get().iter();
            let mut access = ItemAccess::of(key, legacy, &[request.projection_expression()], request.expression_attribute_names(), None);
            access.select = Some(select_of(request.projection_expression().is_some() || !request.attributes_to_get().is_empty()));
            (table.clone(), Some(access))
        })
        .collect();
    targets.sort();
    Some(targets)
}

/// A TransactWriteItems as IAM authorizes it: each of its items as the `UpdateItem`,
/// `PutItem`, `DeleteItem` or `ConditionCheckItem` it is on its table, with what that item's
/// condition keys see. `None` for any other operation.
fn transact_targets(input: &aws_smithy_runtime_api::client::interceptors::context::Input) -> Option<Vec<(&'static str, String, Option<ItemAccess>)>> {
    let transaction = input.downcast_ref::<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput>()?;
    let targets = transaction
        .transact_items()
        .iter()
        .filter_map(|item| {
            if let Some(update) = item.update() {
                let expressions = [Some(update.update_expression()), update.condition_expression()];
                let access = ItemAccess::of(Some(update.key()), std::iter::empty(), &expressions, update.expression_attribute_names(), None);
                return Some(("UpdateItem", update.table_name().to_owned(), Some(access)));
            }
            if let Some(put) = item.put() {
                let access = ItemAccess::of(
                    Some(put.item()),
                    std::iter::empty(),
                    &[put.condition_expression()],
                    put.expression_attribute_names(),
                    None,
                );
                return Some(("PutItem", put.table_name().to_owned(), Some(access)));
            }
            if let Some(check) = item.condition_check() {
                let expressions = [Some(check.condition_expression())];
                let access = ItemAccess::of(Some(check.key()), std::iter::empty(), &expressions, check.expression_attribute_names(), None);
                return Some(("ConditionCheckItem", check.table_name().to_owned(), Some(access)));
            }
            let delete = item.delete()?;
            let access = ItemAccess::of(
                Some(delete.key()),
                std::iter::empty(),
                &[delete.condition_expression()],
                delete.expression_attribute_names(),
                None,
            );
            Some(("DeleteItem", delete.table_name().to_owned(), Some(access)))
        })
        .collect();
    Some(targets)
}

/// `dynamodb:Select` of a read: specific attributes when it projects, else all of them.
fn select_of(projected: bool) -> String {
    if projected { "SPECIFIC_ATTRIBUTES" } else { "ALL_ATTRIBUTES" }.to_owned()
}

/// The partition key attributes of this project's tables, in the order they are looked for
/// (a session item holds a `username` too).
const PARTITION_KEYS: [&str; 2] = ["session_id", "username"];

/// The key value and attribute names of a single-item call (see [`ItemAccess`]).
fn item_access(input: &aws_smithy_runtime_api::client::interceptors::context::Input) -> Option<ItemAccess> {
    use aws_sdk_dynamodb::operation::{delete_item, get_item, put_item, update_item};
    // The legacy parameters (AttributesToGet, Expected, AttributeUpdates) are unused here,
    // but name attributes too.
    if let Some(i) = input.downcast_ref::<get_item::GetItemInput>() {
        let legacy = i.attributes_to_get().iter();
        let mut access = ItemAccess::of(i.key(), legacy, &[i.projection_expression()], i.expression_attribute_names(), None);
        access.select = Some(select_of(i.projection_expression().is_some() || !i.attributes_to_get().is_empty()));
        return Some(access);
    }
    if let Some(i) = input.downcast_ref::<put_item::PutItemInput>() {
        let legacy = keys(i.expected());
        return Some(ItemAccess::of(
            i.item(),
            legacy,
            &[i.condition_expression()],
            i.expression_attribute_names(),
            i.return_values(),
        ));
    }
    if let Some(i) = input.downcast_ref::<update_item::UpdateItemInput>() {
        let legacy = keys(i.expected()).chain(keys(i.attribute_updates()));
        let expressions = [i.update_expression(), i.condition_expression()];
        return Some(ItemAccess::of(i.key(), legacy, &expressions, i.expression_attribute_names(), i.return_values()));
    }
    if let Some(i) = input.downcast_ref::<delete_item::DeleteItemInput>() {
        let legacy = keys(i.expected());
        return Some(ItemAccess::of(
            i.key(),
            legacy,
            &[i.condition_expression()],
            i.expression_attribute_names(),
            i.return_values(),
        ));
    }
    None
}

fn keys<V>(map: Option<&HashMap<String, V>>) -> impl Iterator<Item = &String> {
    map.into_iter().flat_map(HashMap::keys)
}

impl ItemAccess {
    /// From the key (or a PutItem's item), the names in legacy parameters, the expressions,
    /// `ExpressionAttributeNames` and `ReturnValues` of a request.
    fn of<'a>(
        key: Option<&'a HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        legacy: impl Iterator<Item = &'a String>,
        expressions: &[Option<&str>],
        names: Option<&HashMap<String, String>>,
        return_values: Option<&aws_sdk_dynamodb::types::ReturnValue>,
    ) -> Self {
        let mut attributes: BTreeSet<String> = keys(key).chain(legacy).cloned().collect();
        attributes.extend(names.into_iter().flat_map(HashMap::values).cloned());
        for expression in expressions.iter().flatten() {
            expression_attributes(expression, &mut attributes);
        }
        let partition_key = key.and_then(|k| PARTITION_KEYS.iter().find_map(|name| k.get(*name)));
        Self {
            partition_key: partition_key.and_then(|v| v.as_s().ok()).cloned(),
            attributes,
            return_values: return_values.map(|r| r.as_str().to_owned()),
            select: None,
        }
    }
}

/// Adds the top-level attributes an expression names outright: every identifier but
/// keywords, functions, `:values`, `#placeholders` (the caller adds their names) and path
/// elements after a `.`.
fn expression_attributes(expression: &str, out: &mut BTreeSet<String>) {
    const KEYWORDS: [&str; 9] = ["SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"];
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '#';
    let mut rest = expression;
    while let Some(start) = rest.find(word) {
        let previous = rest[..start].trim_end().chars().next_back();
        let end = rest[start..].find(|c: char| !word(c)).map_or(rest.len(), |n| start + n);
        let (token, after) = (&rest[start..end], &rest[end..]);
        rest = after;
        let skip = token.starts_with([':', '#'])
            || token.starts_with(|c: char| c.is_ascii_digit())
            || previous == Some('.')
            || after.trim_start().starts_with('(')
            || KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(token));
        if !skip {
            out.insert(token.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_name_their_top_level_attributes_and_nothing_else() {
        let mut names = BTreeSet::new();
        expression_attributes(
            "SET sessions_valid_after = if_not_exists(sessions_valid_after, :now), #r = :r, a.b = :x, c[0].d = :y REMOVE e ADD f :one",
            &mut names,
        );
        expression_attributes("attribute_exists(username) AND NOT (size(g) BETWEEN :lo AND :hi) OR h IN (:p, :q)", &mut names);
        let expected = ["a", "c", "e", "f", "g", "h", "sessions_valid_after", "username"];
        assert_eq!(names, expected.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>());
    }
}
