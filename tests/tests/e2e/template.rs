//! `template.yaml` must match the code: the binaries it builds exist, the environment it
//! sets is configuration the code reads, and each function's IAM policy grants exactly the
//! calls that function makes (recorded while it runs its flows against the emulator), with
//! every call inside the conditions of the grant it uses.

use std::collections::{BTreeMap, BTreeSet};

use auth_core::Config;
use auth_core::api::discovery::{Discovery, JWKS_PATH, OPENID_CONFIGURATION_PATH};
use auth_core::api::session::AuthApi;
use auth_core::aws::{
    CallRecorder, ItemAccess, SdkCall, account_with, auth_service_with, authorizer_with, load_sdk_config, public_key_cache_with, session_check,
};
use auth_core::config::{DEFAULT_KEY_PUBLISH_DELAY, RevocationCheck};
use auth_core::factors::TotpSecret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use serde_norway::Value;

use crate::harness::*;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn template() -> Value {
    serde_norway::from_str(&std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap()).unwrap()
}

/// `!GetAtt T.Arn` → `T`, `!Ref S` → `S`, `!Sub "${T.Arn}/index/i"` → `T/index/i`.
fn resource_name(value: &Value) -> String {
    let Value::Tagged(tagged) = value else {
        panic!("IAM resource {value:?} must name a resource of the stack, not a literal")
    };
    let text = tagged.value.as_str().unwrap();
    match tagged.tag.to_string().as_str() {
        "!GetAtt" => text.trim_end_matches(".Arn").to_owned(),
        "!Ref" => text.to_owned(),
        "!Sub" => text.replace("${", "").replace(".Arn}", ""),
        other => panic!("unexpected {other} in an IAM resource"),
    }
}

/// (action, resource) → the `Condition` of each statement granting it (`None`: none).
type Grants = BTreeMap<(String, String), Vec<Option<Value>>>;

/// Binary name → its grants.
fn granted_by_function(template: &Value) -> BTreeMap<String, Grants> {
    let mut out = BTreeMap::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        assert_eq!(resource["Metadata"]["BuildMethod"], "rust-cargolambda");
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
        let mut granted = Grants::new();
        for policy in resource["Properties"]["Policies"].as_sequence().unwrap() {
            // `!If [Condition, policy, !Ref AWS::NoValue]`: granted when the condition holds
            // (which grants are conditional is checked by the tests of each condition).
            let policy = match policy {
                Value::Tagged(tagged) if tagged.tag == "!If" => &tagged.value[1],
                policy => policy,
            };
            for statement in policy["Statement"].as_sequence().unwrap() {
                assert_eq!(statement["Effect"], "Allow");
                let resources = match &statement["Resource"] {
                    Value::Sequence(list) => list.clone(),
                    single => vec![single.clone()],
                };
                for action in statement["Action"].as_sequence().unwrap() {
                    let action = action.as_str().unwrap();
                    assert!(!action.contains('*'), "{binary}: wildcard action {action}");
                    for r in &resources {
                        let grant = (action.to_owned(), resource_name(r));
                        // Two statements OR their conditions: a call needs to be inside one.
                        granted.entry(grant).or_default().push(statement.get("Condition").cloned());
                    }
                }
            }
        }
        out.insert(binary, granted);
    }
    out
}

fn bin_names_in_workspace() -> BTreeSet<String> {
    ["login", "refresh", "logout", "authorizer", "discovery", "account", "register", "federation"]
        .iter()
        .map(|crate_dir| {
            let manifest = std::fs::read_to_string(format!("{ROOT}/functions/{crate_dir}/Cargo.toml")).unwrap();
            let bin = manifest.split("[[bin]]").nth(1).expect("functions declare their [[bin]]");
            let name_line = bin.lines().find(|l| l.trim_start().starts_with("name")).unwrap();
            name_line.split('"').nth(1).unwrap().to_owned()
        })
        .collect()
}

#[test]
fn template_builds_the_workspace_binaries_for_arm64_al2023() {
    let template = template();
    let granted = granted_by_function(&template);
    assert_eq!(granted.keys().cloned().collect::<BTreeSet<_>>(), bin_names_in_workspace());
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["CodeUri"], "./");
}

#[test]
fn template_sets_only_variables_the_code_reads() {
    let read = std::sync::Mutex::new(BTreeSet::new());
    // The two required variables get a value, so parsing reads every other variable too.
    Config::from_lookup(|name| {
        read.lock().unwrap().insert(name.to_owned());
        ["AUTH_ISSUER", "AUTH_AUDIENCE"].contains(&name).then(|| "x".to_owned())
    })
    .unwrap();
    let read = read.into_inner().unwrap();
    let template = template();
    let names = |variables: &Value| -> BTreeSet<String> {
        variables
            .as_mapping()
            .map(|m| m.keys().map(|k| k.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let set = names(&template["Globals"]["Function"]["Environment"]["Variables"]);
    let mut everywhere = set.clone();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        everywhere.extend(names(&resource["Properties"]["Environment"]["Variables"]));
    }
    let unknown: Vec<_> = everywhere.difference(&read).collect();
    assert!(unknown.is_empty(), "template sets variables no code reads: {unknown:?}");
    for required in ["AUTH_ISSUER", "AUTH_AUDIENCE", "USERS_TABLE", "SESSIONS_TABLE", "SIGNING_SECRET_ID"] {
        assert!(set.contains(required), "template does not set {required} for every function");
    }
}

fn function<'a>(template: &'a Value, binary: &str) -> &'a Value {
    let (_, resource) = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"] == binary)
        .unwrap_or_else(|| panic!("no function builds {binary}"));
    &resource["Properties"]
}

fn tagged(value: &Value) -> (String, &Value) {
    let Value::Tagged(tagged) = value else {
        panic!("{value:?} is not an intrinsic function")
    };
    (tagged.tag.to_string(), &tagged.value)
}

/// `!If [Condition, !Ref Parameter, !Ref AWS::NoValue]` → (condition, parameter).
fn if_parameter_or_nothing(value: &Value) -> (&str, String) {
    let (tag, args) = tagged(value);
    assert_eq!(tag, "!If", "{value:?}");
    let (_, then) = tagged(&args[1]);
    let (_, otherwise) = tagged(&args[2]);
    assert_eq!(otherwise, "AWS::NoValue", "{value:?} must leave the property unset otherwise");
    (args[0].as_str().unwrap(), then.as_str().unwrap().to_owned())
}

#[test]
fn http_api_authorizer_caches_per_token_and_route_and_only_it_gets_route_roles() {
    let template = template();
    let authorizer = &template["Resources"]["Api"]["Properties"]["Auth"]["Authorizers"]["LambdaAuthorizer"];
    // Plain lists: SAM does not resolve intrinsic functions here (an !If becomes an empty
    // identity source list), so the route key is always part of the cache key.
    let identity = &authorizer["Identity"];
    assert_eq!(identity["Headers"], Value::from(vec!["Authorization"]));
    assert_eq!(
        identity["Context"],
        Value::from(vec!["routeKey"]),
        "with ROUTE_ROLES the answer depends on the route: the cache key must hold it"
    );
    // Outside strict mode (see the strict-mode test for the rest of the !If).
    let (tag, ttl_if) = tagged(&identity["ReauthorizeEvery"]);
    assert_eq!(tag, "!If");
    assert_eq!(tagged(&ttl_if[2]), ("!Ref".to_owned(), &Value::from("AuthorizerCacheTtl")));
    let ttl = &template["Parameters"]["AuthorizerCacheTtl"];
    assert!(
        ttl["Default"].as_u64().unwrap() <= 60,
        "a token is let through up to the cache TTL after its exp"
    );

    let (condition, parameter) = if_parameter_or_nothing(&function(&template, "authorizer")["Environment"]["Variables"]["ROUTE_ROLES"]);
    assert_eq!(parameter, "RouteRoles");
    assert_eq!(template["Parameters"]["RouteRoles"]["Default"], "");
    assert!(
        format!("{:?}", template["Conditions"][condition]).contains("RouteRoles"),
        "{condition} must test the parameter"
    );
    assert!(template["Globals"]["Function"]["Environment"]["Variables"].get("ROUTE_ROLES").is_none());
}

#[test]
fn only_the_verifiers_get_the_deployed_jwks_and_it_is_unset_when_empty() {
    let template = template();
    for verifier in ["authorizer", "account"] {
        let (condition, parameter) = if_parameter_or_nothing(&function(&template, verifier)["Environment"]["Variables"]["AUTH_PUBLIC_JWKS"]);
        assert_eq!(parameter, "PublicJwks", "{verifier}");
        assert!(
            format!("{:?}", template["Conditions"][condition]).contains("PublicJwks"),
            "{condition} must test the parameter"
        );
    }
    for other in ["login", "refresh", "logout", "discovery"] {
        assert!(function(&template, other).get("Environment").is_none(), "{other} needs no public JWKS");
    }
    assert_eq!(template["Parameters"]["PublicJwks"]["Default"], "");
    assert!(template["Globals"]["Function"]["Environment"]["Variables"].get("AUTH_PUBLIC_JWKS").is_none());
    let publish_delay = &template["Globals"]["Function"]["Environment"]["Variables"]["KEY_PUBLISH_DELAY"];
    assert_eq!(tagged(publish_delay), ("!Ref".to_owned(), &Value::from("KeyPublishDelay")));
    assert_eq!(template["Parameters"]["KeyPublishDelay"]["Default"], DEFAULT_KEY_PUBLISH_DELAY);
}

#[test]
fn discovery_serves_its_two_documents_to_anyone_on_the_http_api() {
    let template = template();
    let discovery = function(&template, "discovery");
    let mut routes = BTreeSet::new();
    for (_, event) in discovery["Events"].as_mapping().unwrap() {
        assert_eq!(event["Type"], "HttpApi");
        let properties = &event["Properties"];
        assert_eq!(tagged(&properties["ApiId"]), ("!Ref".to_owned(), &Value::from("Api")));
        assert_eq!(properties["Method"], "GET");
        assert_eq!(properties["Auth"]["Authorizer"], "NONE", "public documents: no authorizer in front");
        routes.insert(properties["Path"].as_str().unwrap().to_owned());
    }
    assert_eq!(routes, BTreeSet::from([JWKS_PATH.to_owned(), OPENID_CONFIGURATION_PATH.to_owned()]));
    assert_eq!(discovery["MemorySize"], 128);
}

#[test]
fn account_serves_its_password_and_session_routes_itself_and_cors_lets_browsers_send_the_bearer() {
    let template = template();
    let account = function(&template, "account");
    let mut routes = BTreeSet::new();
    for (_, event) in account["Events"].as_mapping().unwrap() {
        assert_eq!(event["Type"], "HttpApi");
        let properties = &event["Properties"];
        assert_eq!(tagged(&properties["ApiId"]), ("!Ref".to_owned(), &Value::from("Api")));
        // The function verifies the bearer and the session itself; an authorizer's cached
        // allow would let a revoked session's token through.
        assert_eq!(properties["Auth"]["Authorizer"], "NONE");
        routes.insert(format!("{} {}", properties["Method"].as_str().unwrap(), properties["Path"].as_str().unwrap()));
    }
    let expected = [
        "POST /auth/password",
        "OPTIONS /auth/password",
        "GET /auth/sessions",
        "OPTIONS /auth/sessions",
        "DELETE /auth/sessions/{session_id}",
        "OPTIONS /auth/sessions/{session_id}",
        "GET /auth/mfa",
        "OPTIONS /auth/mfa",
        "POST /auth/mfa/totp",
        "DELETE /auth/mfa/totp",
        "OPTIONS /auth/mfa/totp",
        "POST /auth/mfa/totp/confirm",
        "OPTIONS /auth/mfa/totp/confirm",
        "POST /auth/mfa/recovery-codes",
        "OPTIONS /auth/mfa/recovery-codes",
        "POST /auth/mfa/step-up",
        "OPTIONS /auth/mfa/step-up",
        "POST /auth/mfa/step-up/start",
        "OPTIONS /auth/mfa/step-up/start",
        "GET /auth/passkeys",
        "OPTIONS /auth/passkeys",
        "DELETE /auth/passkeys/{passkey_id}",
        "OPTIONS /auth/passkeys/{passkey_id}",
        "POST /auth/passkeys/register/start",
        "OPTIONS /auth/passkeys/register/start",
        "POST /auth/passkeys/register/finish",
        "OPTIONS /auth/passkeys/register/finish",
        "GET /auth/identities",
        "OPTIONS /auth/identities",
        "DELETE /auth/identities/{identity_id}",
        "OPTIONS /auth/identities/{identity_id}",
        "POST /auth/identities/{provider}/link",
        "OPTIONS /auth/identities/{provider}/link",
    ];
    assert_eq!(routes, expected.iter().map(|r| (*r).to_owned()).collect::<BTreeSet<_>>());
    let cors = &template["Resources"]["Api"]["Properties"]["CorsConfiguration"];
    for method in ["GET", "POST", "DELETE"] {
        assert!(cors["AllowMethods"].as_sequence().unwrap().contains(&Value::from(method)), "{method}");
    }
    assert!(cors["AllowHeaders"].as_sequence().unwrap().contains(&Value::from("authorization")));
}

#[test]
fn the_built_in_jwt_authorizer_is_optional_and_checks_our_issuer_and_audience() {
    let template = template();
    let api = &template["Resources"]["Api"]["Properties"];
    let (tag, args) = tagged(&api["DefinitionBody"]["components"]["securitySchemes"]["ApiGatewayJwt"]);
    assert_eq!(tag, "!If");
    let condition = args[0].as_str().unwrap();
    let condition_text = format!("{:?}", template["Conditions"][condition]);
    assert!(
        condition_text.contains("JwtAuthorizer") && condition_text.contains("enabled"),
        "{condition_text}"
    );
    assert_eq!(template["Parameters"]["JwtAuthorizer"]["Default"], "none", "off unless asked for");
    assert_eq!(tagged(&args[2]), ("!Ref".to_owned(), &Value::from("AWS::NoValue")));
    let scheme = &args[1];
    assert_eq!(scheme["type"], "oauth2");
    let authorizer = &scheme["x-amazon-apigateway-authorizer"];
    assert_eq!(authorizer["type"], "jwt");
    assert_eq!(authorizer["identitySource"], "$request.header.Authorization");
    assert_eq!(tagged(&authorizer["jwtConfiguration"]["issuer"]), ("!Ref".to_owned(), &Value::from("Issuer")));
    let audiences = authorizer["jwtConfiguration"]["audience"].as_sequence().unwrap();
    assert_eq!(audiences.len(), 1);
    assert_eq!(tagged(&audiences[0]), ("!Ref".to_owned(), &Value::from("Audience")));
    // The Lambda authorizer stays the default.
    assert_eq!(api["Auth"]["DefaultAuthorizer"], "LambdaAuthorizer");
}

#[test]
fn the_authorizer_reads_the_tables_only_in_strict_mode_whose_cache_ttl_is_the_staleness_bound() {
    let template = template();
    assert_eq!(
        format!("{:?}", template["Conditions"]["StrictRevocation"]),
        format!("{:?}", serde_norway::from_str::<Value>("!Equals [!Ref RevocationCheck, session]").unwrap())
    );
    assert_eq!(template["Parameters"]["RevocationCheck"]["Default"], "off");
    assert_eq!(template["Parameters"]["RevocationMaxStaleness"]["MaxValue"], 60);
    // Every DynamoDB grant of the authorizer sits in the one policy that exists only in
    // strict mode; the policy outside it names Secrets Manager alone.
    let authorizer = function(&template, "authorizer");
    let mut strict_actions = Vec::new();
    for policy in authorizer["Policies"].as_sequence().unwrap() {
        let text = format!("{policy:?}");
        match policy {
            Value::Tagged(conditional) if conditional.tag == "!If" => {
                assert_eq!(conditional.value[0], "StrictRevocation");
                assert_eq!(tagged(&conditional.value[2]), ("!Ref".to_owned(), &Value::from("AWS::NoValue")));
                for statement in conditional.value[1]["Statement"].as_sequence().unwrap() {
                    strict_actions.extend(statement["Action"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()));
                    assert_eq!(
                        statement["Condition"]["StringEqualsIfExists"]["dynamodb:Select"], "SPECIFIC_ATTRIBUTES",
                        "projected reads only"
                    );
                }
            }
            _ => assert!(!text.contains("dynamodb"), "the authorizer reads no table outside strict mode: {text}"),
        }
    }
    strict_actions.sort();
    strict_actions.dedup();
    assert_eq!(strict_actions, ["dynamodb:BatchGetItem", "dynamodb:GetItem"]);
    // The strict authorizer's environment comes from the parameters.
    let variables = &authorizer["Environment"]["Variables"];
    for (variable, parameter) in [
        ("REVOCATION_CHECK", "RevocationCheck"),
        ("REVOCATION_MAX_STALENESS", "RevocationMaxStaleness"),
        ("REVOCATION_FAIL", "RevocationFail"),
    ] {
        assert_eq!(tagged(&variables[variable]), ("!Ref".to_owned(), &Value::from(parameter)));
    }
    // API Gateway's cache would add its TTL to the staleness: in strict mode the TTL is the
    // staleness bound (or 0 when caching is off).
    let identity = &template["Resources"]["Api"]["Properties"]["Auth"]["Authorizers"]["LambdaAuthorizer"]["Identity"];
    let (_, ttl_if) = tagged(&identity["ReauthorizeEvery"]);
    assert_eq!(ttl_if[0], "StrictRevocation");
    let (_, strict_ttl) = tagged(&ttl_if[1]);
    assert_eq!(strict_ttl[0], "NoAuthorizerCache");
    assert_eq!(strict_ttl[1], 0);
    assert_eq!(tagged(&strict_ttl[2]), ("!Ref".to_owned(), &Value::from("RevocationMaxStaleness")));
    assert_eq!(
        format!("{:?}", template["Conditions"]["NoAuthorizerCache"]),
        format!("{:?}", serde_norway::from_str::<Value>("!Equals [!Ref AuthorizerCacheTtl, 0]").unwrap())
    );
}

#[test]
fn login_alone_can_get_reserved_concurrency() {
    let template = template();
    let (condition, parameter) = if_parameter_or_nothing(&function(&template, "login")["ReservedConcurrentExecutions"]);
    assert_eq!(parameter, "LoginReservedConcurrency");
    assert_eq!(template["Parameters"]["LoginReservedConcurrency"]["Default"], 0);
    assert!(format!("{:?}", template["Conditions"][condition]).contains("LoginReservedConcurrency"));
    for other in ["refresh", "logout", "authorizer", "discovery", "account"] {
        assert!(function(&template, other).get("ReservedConcurrentExecutions").is_none());
    }
}

/// IAM's `StringLike`: `*` any run of characters, `?` any one.
fn string_like(pattern: &[u8], value: &[u8]) -> bool {
    match (pattern.split_first(), value.split_first()) {
        (None, _) => value.is_empty(),
        (Some((b'*', rest)), _) => string_like(rest, value) || (!value.is_empty() && string_like(pattern, &value[1..])),
        (Some((p, rest)), Some((v, value))) => (*p == b'?' || p == v) && string_like(rest, value),
        (Some(_), None) => false,
    }
}

/// Why `call` is outside `condition` (the `Condition` of the statement granting it), if it is.
/// Knows the condition keys the template uses and refuses any other, so that a new one comes
/// with a check.
fn outside_condition(call: &SdkCall, condition: &Value) -> Option<String> {
    let item = call.item.clone().unwrap_or_default();
    for (operator, keys) in condition.as_mapping().expect("Condition is a mapping") {
        for (key, allowed) in keys.as_mapping().expect("a condition operator maps keys to values") {
            let allowed: Vec<&str> = match allowed {
                Value::Sequence(list) => list.iter().map(|v| v.as_str().unwrap()).collect(),
                single => vec![single.as_str().unwrap()],
            };
            match (operator.as_str().unwrap(), key.as_str().unwrap()) {
                ("ForAllValues:StringLike", "dynamodb:LeadingKeys") => {
                    let Some(key) = &item.partition_key else {
                        return Some("no partition key recorded".into());
                    };
                    if !allowed.iter().any(|pattern| string_like(pattern.as_bytes(), key.as_bytes())) {
                        return Some(format!("partition key {key:?} is none of {allowed:?}"));
                    }
                }
                ("ForAllValues:StringNotLike", "dynamodb:LeadingKeys") => {
                    let Some(key) = &item.partition_key else {
                        return Some("no partition key recorded".into());
                    };
                    if let Some(pattern) = allowed.iter().find(|pattern| string_like(pattern.as_bytes(), key.as_bytes())) {
                        return Some(format!("partition key {key:?} is {pattern:?}, which the grant excludes"));
                    }
                }
                ("ForAllValues:StringEquals", "dynamodb:Attributes") => {
                    if item.attributes.is_empty() {
                        return Some("no attributes recorded".into());
                    }
                    let beyond: Vec<_> = item.attributes.iter().filter(|a| !allowed.contains(&a.as_str())).collect();
                    if !beyond.is_empty() {
                        return Some(format!("names {beyond:?}, beyond {allowed:?}"));
                    }
                }
                ("StringEqualsIfExists", "dynamodb:Select") => {
                    if let Some(select) = &item.select
                        && !allowed.contains(&select.as_str())
                    {
                        return Some(format!("reads with Select {select}, not one of {allowed:?}"));
                    }
                }
                ("StringEqualsIfExists", "dynamodb:ReturnValues") => {
                    if let Some(asked) = &item.return_values
                        && !allowed.contains(&asked.as_str())
                    {
                        return Some(format!("asks ReturnValues {asked}, not one of {allowed:?}"));
                    }
                }
                (operator, key) => panic!("the template test does not check {operator} {key}: teach outside_condition"),
            }
        }
    }
    None
}

/// Why `call` is outside every statement granting it, if it is: inside one is enough.
fn outside_grant(call: &SdkCall, conditions: &[Option<Value>]) -> Option<String> {
    let mut why = Vec::new();
    for condition in conditions {
        match condition.as_ref().map(|c| outside_condition(call, c)) {
            None | Some(None) => return None,
            Some(Some(reason)) => why.push(reason),
        }
    }
    Some(why.join("; and "))
}

fn item_call(operation: &str, partition_key: &str, attributes: &[&str], return_values: Option<&str>) -> SdkCall {
    SdkCall {
        service: "dynamodb".into(),
        operation: operation.into(),
        resource: "users".into(),
        item: Some(ItemAccess {
            partition_key: Some(partition_key.into()),
            attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
            return_values: return_values.map(str::to_owned),
            select: None,
        }),
    }
}

#[test]
fn user_items_are_writable_only_by_key_prefix_or_named_attributes() {
    let granted = granted_by_function(&template());
    let users_update = ("dynamodb:UpdateItem".to_owned(), "UsersTable".to_owned());

    let conditions = |function: &str| {
        let conditions = &granted[function][&users_update];
        assert!(
            conditions.iter().all(Option::is_some),
            "{function}'s UpdateItem on the users table is conditional"
        );
        conditions.clone()
    };

    // login updates attempt counters, second factors' use and challenges only: never a
    // user item.
    let login = conditions("login");
    assert_eq!(login.len(), 1);
    assert_eq!(
        login[0].as_ref().unwrap()["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        Value::from(vec!["throttle#*", "mfa#*", "link#*"])
    );
    let counter = item_call("UpdateItem", "throttle#alice@example.com", &["username", "attempts"], None);
    assert_eq!(outside_grant(&counter, &login), None);
    let user = item_call("UpdateItem", "alice@example.com", &["username", "password_hash"], None);
    assert!(outside_grant(&user, &login).is_some(), "a user item must be outside login's grant");
    let disguised = item_call("UpdateItem", "alice@example.com#throttle#", &["username"], None);
    assert!(outside_grant(&disguised, &login).is_some());

    // refresh and register read users and links, never a user's second factors; register
    // writes none either.
    let users_read = ("dynamodb:GetItem".to_owned(), "UsersTable".to_owned());
    for function in ["refresh", "register"] {
        let reads = &granted[function][&users_read];
        let factors = item_call("GetItem", "mfa#alice@example.com", &[], None);
        assert!(outside_grant(&factors, reads).is_some(), "{function} must not read mfa# items");
        assert_eq!(outside_grant(&item_call("GetItem", "alice@example.com", &[], None), reads), None);
    }
    for (action, attributes) in [("PutItem", &["username", "owner"][..]), ("UpdateItem", &["username", "expires_at"][..])] {
        let writes = &granted["register"][&(format!("dynamodb:{action}"), "UsersTable".to_owned())];
        for key in ["mfa#alice@example.com", "passkey#abc"] {
            assert!(
                outside_grant(&item_call(action, key, attributes, None), writes).is_some(),
                "register must not {action} {key}"
            );
        }
    }

    // federation writes new users and identities, never a user's second factors or
    // passkeys, nor a link's or a sign-up's attributes; its deletes and other puts are
    // ceremonies (link#) only; linking adds to a user's identities set, under the condition
    // on its verified address, and writes nothing else of a user item.
    let puts = &granted["federation"][&("dynamodb:PutItem".to_owned(), "UsersTable".to_owned())];
    for key in ["mfa#alice@example.com", "passkey#abc"] {
        assert!(
            outside_grant(&item_call("PutItem", key, &["username", "owner"], None), puts).is_some(),
            "federation must not put {key}"
        );
    }
    let identity = item_call(
        "PutItem",
        "identity#https://idp.test#123",
        &["username", "issuer", "subject", "provider", "owner", "user_id", "created_at"],
        None,
    );
    assert_eq!(outside_grant(&identity, puts), None);
    let updates = conditions("federation");
    let link = item_call(
        "UpdateItem",
        "alice@example.com",
        &["username", "user_id", "email_verified", "identities"],
        None,
    );
    assert_eq!(outside_grant(&link, &updates), None);
    for attribute in ["password_hash", "roles", "disabled", "session_epoch", "expires_at"] {
        let call = item_call("UpdateItem", "alice@example.com", &["username", "identities", attribute], None);
        assert!(outside_grant(&call, &updates).is_some(), "federation must not update {attribute}");
    }
    let puts = &granted["federation"][&("dynamodb:PutItem".to_owned(), "UsersTable".to_owned())];
    for attribute in ["verify_link", "reset_link", "expires_at", "attempts", "totp_secret"] {
        let call = item_call("PutItem", "frank@example.com", &["username", "user_id", attribute], None);
        assert!(outside_grant(&call, puts).is_some(), "federation must not put {attribute}");
    }
    let deletes = &granted["federation"][&("dynamodb:DeleteItem".to_owned(), "UsersTable".to_owned())];
    assert!(outside_grant(&item_call("DeleteItem", "alice@example.com", &["username"], None), deletes).is_some());

    // account: attempt counters, and on a user item the password and the epoch it bumps,
    // nothing else (not roles, the disabled flag, nor a TTL attribute that would delete the
    // user).
    let account = conditions("account");
    assert_eq!(outside_grant(&counter, &account), None);
    let unlink = item_call("UpdateItem", "alice@example.com", &["username", "identities", "password_hash"], None);
    assert_eq!(outside_grant(&unlink, &account), None);
    let deletes = &granted["account"][&("dynamodb:DeleteItem".to_owned(), "UsersTable".to_owned())];
    assert_eq!(
        outside_grant(&item_call("DeleteItem", "identity#https://idp.test#123", &["username", "owner"], None), deletes),
        None
    );
    assert!(outside_grant(&item_call("DeleteItem", "alice@example.com", &["username", "owner"], None), deletes).is_some());
    let change = item_call(
        "UpdateItem",
        "alice@example.com",
        &["username", "password_hash", "password_changed_at", "session_epoch"],
        None,
    );
    assert_eq!(outside_grant(&change, &account), None);
    for attribute in ["roles", "disabled", "user_id", "expires_at", "attempts"] {
        let call = item_call("UpdateItem", "alice@example.com", &["username", "password_hash", attribute], None);
        assert!(outside_grant(&call, &account).is_some(), "account must not write {attribute} on a user item");
    }

    // logout bumps the session epoch and nothing else, and cannot read the item back.
    let logout = conditions("logout");
    let attributes = &logout[0].as_ref().unwrap()["ForAllValues:StringEquals"]["dynamodb:Attributes"];
    assert!(attributes.as_sequence().unwrap().contains(&Value::from("username")), "IAM needs the key listed");
    let revoke = item_call("UpdateItem", "alice@example.com", &["username", "session_epoch"], Some("NONE"));
    assert_eq!(outside_grant(&revoke, &logout), None);
    for (attributes, return_values) in [
        (&["username", "session_epoch", "password_hash"][..], None),
        (&["username", "roles"][..], None),
        (&["username", "disabled"][..], None),
        (&["username", "user_id", "session_epoch"][..], None),
        (&["username", "session_epoch"][..], Some("ALL_NEW")),
        (&["username", "session_epoch"][..], Some("ALL_OLD")),
    ] {
        let call = item_call("UpdateItem", "alice@example.com", attributes, return_values);
        assert!(outside_grant(&call, &logout).is_some(), "{call:?} must be outside logout's grant");
    }
}

#[test]
fn the_account_function_writes_sessions_only_to_end_them_or_move_them_to_the_new_epoch() {
    let granted = granted_by_function(&template());
    let conditions = &granted["account"][&("dynamodb:UpdateItem".to_owned(), "SessionsTable".to_owned())];
    let session = "AAAAAAAAAAAAAAAAAAAAAA";
    let end = item_call(
        "UpdateItem",
        session,
        &["session_id", "user_id", "revoked_at", "revoke_reason", "expires_at", "absolute_expires_at"],
        Some("ALL_OLD"),
    );
    assert_eq!(outside_grant(&end, conditions), None);
    let moved = item_call(
        "UpdateItem",
        session,
        &["session_id", "user_id", "session_epoch", "revoked_at", "expires_at"],
        None,
    );
    assert_eq!(outside_grant(&moved, conditions), None);
    for attribute in ["created_at", "token_hash", "previous_token_hash", "generation", "rotated_at", "username"] {
        let call = item_call("UpdateItem", session, &["session_id", "revoked_at", attribute], None);
        assert!(outside_grant(&call, conditions).is_some(), "account must not write {attribute} on a session");
    }
}

/// Each function wired as its `main.rs` wires it, with its own call recorder.
struct Recorded {
    login: AuthApi,
    refresh: AuthApi,
    logout: AuthApi,
    discovery: Discovery,
    account: auth_core::api::account::Account,
    register: auth_core::api::register::RegisterApi,
    federation: auth_core::api::federation::FederationApi,
    recorders: BTreeMap<&'static str, CallRecorder>,
}

async fn recorded_functions(config: &Config) -> (Recorded, auth_core::api::authorizer::Authorizer) {
    let sdk = load_sdk_config().await;
    let recorders: BTreeMap<&'static str, CallRecorder> = ["login", "refresh", "logout", "authorizer", "discovery", "account", "register", "federation"]
        .into_iter()
        .map(|n| (n, CallRecorder::default()))
        .collect();
    let service = |name: &str| {
        let (dynamodb, secrets) = recorders[name].clients(&sdk);
        auth_service_with(config, dynamodb, secrets).with_passkeys(auth_core::passkeys::Passkeys::from_config(config).unwrap())
    };
    let (login, refresh, logout) = (service("login"), service("refresh"), service("logout"));
    login.warm_up().await;
    refresh.warm_up().await;
    // In strict mode, reading every time (no staleness), so that both of its reads happen:
    // the first sight of a session (GetItem session, then user) and a known one (BatchGetItem).
    let (dynamodb, secrets) = recorders["authorizer"].clients(&sdk);
    let strict = Config {
        revocation_check: RevocationCheck::Session,
        revocation_max_staleness: 0,
        ..config.clone()
    };
    let authorizer = authorizer_with(&strict, secrets).unwrap().with_session_check(session_check(&strict, dynamodb));
    authorizer.keys().store().current().await.unwrap();
    let discovery = Discovery::new(config, public_key_cache_with(config, recorders["discovery"].clients(&sdk).1)).unwrap();
    discovery.warm_up().await;
    let (dynamodb, secrets) = recorders["account"].clients(&sdk);
    let account = account_with(config, dynamodb, secrets).unwrap();
    let recorded = Recorded {
        login: AuthApi::new(login, config),
        refresh: AuthApi::new(refresh, config),
        logout: AuthApi::new(logout, config),
        discovery,
        account,
        register: auth_core::aws::register_with(config, recorders["register"].clients(&sdk).0, recorders["register"].ses_client(&sdk)).unwrap(),
        federation: {
            let (dynamodb, secrets) = recorders["federation"].clients(&sdk);
            auth_core::aws::federation_with(config, dynamodb, secrets).await.unwrap()
        },
        recorders,
    };
    (recorded, authorizer)
}

#[tokio::test]
async fn each_function_is_granted_exactly_the_calls_it_makes() {
    let idp = crate::federation::Idp::start().await;
    let (app, _) = crate::federation::app_with_provider(&idp.issuer, true).await;
    let (f, authorizer) = recorded_functions(&app.config).await;

    // federation: a first sign-in linking Alice's account by her verified address, one
    // creating a user, and one by an identity already linked.
    for login in [ALICE, "frank@example.com", ALICE] {
        let answer = crate::federation::sign_in(&f.federation, login).await;
        assert!(!answer.header("location").unwrap().contains("error="), "{answer:?}");
    }

    let login = |username: &str, password: &str| Call::post("/auth/login").json(json!({"username": username, "password": password})).request();
    let refresh = |cookie: &str| Call::post("/auth/refresh").cookie(cookie).request();

    // login: success, failures (counted), throttled, unknown user, success resetting a counter.
    let ok = Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap());
    for _ in 0..6 {
        login::handle(&f.login, login(BOB, "wrong password!")).await.unwrap();
    }
    login::handle(&f.login, login("ghost@example.com", PASSWORD)).await.unwrap();
    login::handle(&f.login, login(ALICE, "wrong password!")).await.unwrap();
    let second = Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap());

    // refresh: rotation, grace, reuse (revokes).
    let cookie = ok.refresh_cookie();
    let rotated = Answer::from(refresh::handle(&f.refresh, refresh(&cookie)).await.unwrap());
    refresh::handle(&f.refresh, refresh(&cookie)).await.unwrap();
    app.set_session_number(&session_id_of(&rotated.refresh_token()), "rotated_at", now() - 60).await;
    assert_eq!(
        Answer::from(refresh::handle(&f.refresh, refresh(&cookie)).await.unwrap()).error_code(),
        "token_reused"
    );

    // logout: one session, one with a superseded token (reads the pepper), then everywhere.
    logout::handle(&f.logout, Call::post("/auth/logout").cookie(&second.refresh_cookie()).request())
        .await
        .unwrap();
    let superseded = Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap()).refresh_cookie();
    refresh::handle(&f.refresh, refresh(&superseded)).await.unwrap();
    logout::handle(&f.logout, Call::post("/auth/logout").cookie(&superseded).request())
        .await
        .unwrap();
    let fourth = Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap());
    logout::handle(
        &f.logout,
        Call::post("/auth/logout")
            .cookie(&fourth.refresh_cookie())
            .json(json!({"everywhere": true}))
            .request(),
    )
    .await
    .unwrap();

    // refresh after the user was disabled: the session is revoked.
    let last = Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap());
    auth_core::store::UserStore::set_disabled(
        &auth_core::store::dynamodb::DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table),
        ALICE,
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        Answer::from(refresh::handle(&f.refresh, refresh(&last.refresh_cookie())).await.unwrap()).status,
        401
    );

    // authorizer (strict): an unknown kid (re-fetches the key set); its session reads come
    // below, once Alice is enabled again.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"k9"}"#);
    let unknown_kid = format!("Bearer {header}.{}", ok.access_token().split_once('.').unwrap().1);
    ask(&authorizer, &http_api_authorizer_event(Some(&unknown_kid), "GET /pets")).await.unwrap();

    // discovery: both documents, and a revalidation.
    let jwks = Answer::from(discovery::handle(&f.discovery, Call::get(JWKS_PATH).request()).await.unwrap());
    assert_eq!(jwks.status, 200);
    let etag = jwks.header("etag").unwrap().to_owned();
    let revalidated = discovery::handle(&f.discovery, Call::get(JWKS_PATH).header("if-none-match", &etag).request()).await;
    assert_eq!(Answer::from(revalidated.unwrap()).status, 304);
    let metadata = discovery::handle(&f.discovery, Call::get(OPENID_CONFIGURATION_PATH).request()).await;
    assert_eq!(Answer::from(metadata.unwrap()).status, 200);

    // account: a listing, ending one's own session and an unknown one (the condition fails,
    // as for another user's), and a token whose kid is not deployed (reads the public store).
    auth_core::store::UserStore::set_disabled(
        &auth_core::store::dynamodb::DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table),
        ALICE,
        false,
    )
    .await
    .unwrap();
    let alice = Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap());
    let other = Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap());
    let bearer = format!("Bearer {}", alice.access_token());
    // authorizer (strict, reading every time): a session it has not seen (GetItem session,
    // then user), then the same one known (BatchGetItem).
    for _ in 0..2 {
        let answer = ask(&authorizer, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.unwrap();
        assert_eq!(answer["isAuthorized"], true);
    }
    let account = |call: Call| {
        let request = call.request();
        async { Answer::from(account::handle(&f.account, request).await.unwrap()) }
    };
    // ... and the identity her first federated sign-in linked: listed, then unlinked.
    let identities = account(Call::get("/auth/identities").header("authorization", &bearer)).await;
    let identity_id = identities.json()["identities"][0]["id"].as_str().unwrap().to_owned();
    let unlink: &'static str = format!("/auth/identities/{identity_id}").leak();
    assert_eq!(account(Call::get(unlink).method("DELETE").header("authorization", &bearer)).await.status, 204);
    let listed = account(Call::get("/auth/sessions").header("authorization", &bearer)).await;
    assert_eq!(listed.json()["sessions"].as_array().unwrap().len(), 2, "{}", listed.body);
    let own: &'static str = format!("/auth/sessions/{}", session_id_of(&other.refresh_token())).leak();
    assert_eq!(account(Call::get(own).method("DELETE").header("authorization", &bearer)).await.status, 204);
    let unknown = "/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(account(Call::get(unknown).method("DELETE").header("authorization", &bearer)).await.status, 404);
    let unknown_kid = format!("Bearer {header}.{}", alice.access_token().split_once('.').unwrap().1);
    assert_eq!(account(Call::get("/auth/sessions").header("authorization", &unknown_kid)).await.status, 401);
    // ... and password changes: a wrong current password (a counted attempt), then a change
    // that ends another session.
    Answer::from(login::handle(&f.login, login(ALICE, PASSWORD)).await.unwrap());
    let change = |current: &str| {
        Call::post("/auth/password")
            .header("authorization", &bearer)
            .json(json!({"current_password": current, "new_password": "quartz lantern orbit meadow"}))
    };
    assert_eq!(account(change("wrong password!")).await.status, 401);
    let changed = account(change(PASSWORD)).await;
    assert_eq!(changed.status, 204, "{}", changed.body);

    // ... and a second factor: status, enrolment (a wrong code, then the right one), a
    // step-up with a recovery code, new codes; then a login challenge answered wrong, then
    // right, one killed by wrong answers; and TOTP turned off.
    let new_password = "quartz lantern orbit meadow";
    assert_eq!(account(Call::get("/auth/mfa").header("authorization", &bearer)).await.status, 200);
    let enrolment = account(Call::post("/auth/mfa/totp").header("authorization", &bearer)).await;
    let secret = TotpSecret::from_base32(enrolment.json()["secret"].as_str().unwrap()).unwrap();
    let code_at = |offset: u64| json!({"code": secret.code_at(now() + offset)});
    let confirm = |body: serde_json::Value| Call::post("/auth/mfa/totp/confirm").header("authorization", &bearer).json(body);
    assert_eq!(account(confirm(json!({"code": "000000"}))).await.status, 401);
    let confirmed = account(confirm(code_at(0))).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let recovery = confirmed.json()["recovery_codes"][0].as_str().unwrap().to_owned();
    let step_up = Call::post("/auth/mfa/step-up")
        .header("authorization", &bearer)
        .json(json!({"recovery_code": recovery}));
    assert_eq!(account(step_up).await.status, 204);
    assert_eq!(
        account(Call::post("/auth/mfa/recovery-codes").header("authorization", &bearer)).await.status,
        200
    );
    let login_mfa = |body: serde_json::Value| Call::post("/auth/login/mfa").json(body).request();
    let challenged = Answer::from(login::handle(&f.login, login(ALICE, new_password)).await.unwrap());
    let mfa_token = challenged.json()["mfa_token"].as_str().unwrap().to_owned();
    let cookie = format!("mfa_challenge={mfa_token}");
    let described = login::handle(&f.login, Call::post("/auth/login/mfa/options").cookie(&cookie).request()).await;
    assert_eq!(Answer::from(described.unwrap()).status, 200);
    let wrong = login::handle(&f.login, login_mfa(json!({"mfa_token": mfa_token, "code": "000000"}))).await;
    assert_eq!(Answer::from(wrong.unwrap()).error_code(), "invalid_code");
    let mut right = code_at(30);
    right["mfa_token"] = mfa_token.into();
    assert_eq!(Answer::from(login::handle(&f.login, login_mfa(right)).await.unwrap()).status, 200);
    app.clear_throttle(ALICE).await;
    let doomed = Answer::from(login::handle(&f.login, login(ALICE, new_password)).await.unwrap());
    for _ in 0..auth_core::service::MAX_CHALLENGE_FAILURES {
        let body = json!({"mfa_token": doomed.json()["mfa_token"], "code": "000000"});
        login::handle(&f.login, login_mfa(body)).await.unwrap();
    }
    app.clear_throttle(ALICE).await;
    let off = account(Call::get("/auth/mfa/totp").method("DELETE").header("authorization", &bearer)).await;
    assert_eq!(off.status, 204, "{}", off.body);

    // ... and a passkey: registered, listed, signing in (its ceremony, its owner, its
    // counter), then removed.
    let mut authenticator = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let started = account(Call::post("/auth/passkeys/register/start").header("authorization", &bearer)).await;
    let mut options = started.json()["options"].clone();
    let handle = options["publicKey"]["user"]["id"].as_str().unwrap().to_owned();
    options["publicKey"]["authenticatorSelection"]["residentKey"] = "discouraged".into();
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = false.into();
    let credential = webauthn_authenticator_rs::WebauthnAuthenticator::do_registration(
        &mut authenticator,
        crate::passkeys::origin(),
        serde_json::from_value(options).unwrap(),
    )
    .unwrap();
    let finish = Call::post("/auth/passkeys/register/finish")
        .header("authorization", &bearer)
        .json(json!({"passkey_token": started.json()["passkey_token"], "credential": credential}));
    let added = account(finish).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let id = added.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(account(Call::get("/auth/passkeys").header("authorization", &bearer)).await.status, 200);
    let sign_in = Answer::from(login::handle(&f.login, Call::post("/auth/passkeys/login/start").request()).await.unwrap());
    let assertion = crate::passkeys::assert_with(
        &mut authenticator,
        serde_json::from_value(sign_in.json()["options"].clone()).unwrap(),
        &id,
        &handle,
        crate::passkeys::origin(),
    );
    let finish = Call::post("/auth/passkeys/login/finish").json(json!({"passkey_token": sign_in.json()["passkey_token"], "credential": assertion}));
    assert_eq!(Answer::from(login::handle(&f.login, finish.request()).await.unwrap()).status, 200);
    let path: &'static str = format!("/auth/passkeys/{id}").leak();
    let removed = account(Call::get(path).method("DELETE").header("authorization", &bearer)).await;
    assert_eq!(removed.status, 204, "{}", removed.body);

    // register: a sign-up, its verification and resend, a taken address, forgot (also
    // over the limit), a reset that clears the throttle.
    let api = &f.register;
    let register = |path: &'static str, body: serde_json::Value| {
        let call = Call::post(path).json(body);
        async move { Answer::from(register::handle(api, call.request()).await.unwrap()) }
    };
    let address = format!("t{}@example.com", auth_core::random::random_id().to_lowercase().replace(['-', '_'], "x"));
    let signed_up = register("/auth/signup", json!({"username": address, "password": "quartz lantern orbit meadow"})).await;
    assert_eq!(signed_up.status, 202);
    assert_eq!(register("/auth/verify-email/resend", json!({"username": address})).await.status, 202);
    let token = last_link_token(&address).await.unwrap();
    assert_eq!(
        register("/auth/verify-email", json!({"token": token, "password": "quartz lantern orbit meadow"}))
            .await
            .status,
        204
    );
    assert_eq!(
        register("/auth/signup", json!({"username": address, "password": "quartz lantern orbit meadow"}))
            .await
            .status,
        202
    );
    for _ in 0..2 {
        assert_eq!(register("/auth/password/forgot", json!({"username": address})).await.status, 202);
    }
    let token = last_link_token(&address).await.unwrap();
    let reset = register("/auth/password/reset", json!({"token": token, "new_password": "a brand new passphrase here"})).await;
    assert_eq!(reset.status, 204, "{}", reset.body);

    let names = BTreeMap::from([
        (
            "ses:identity".to_owned(),
            "arn:aws:ses:AWS::Region}:AWS::AccountId}:identity/SesIdentity}".to_owned(),
        ),
        (app.config.users_table.clone(), "UsersTable".to_owned()),
        (app.config.sessions_table.clone(), "SessionsTable".to_owned()),
        (
            format!("{}/index/by_user_created", app.config.sessions_table),
            "SessionsTable/index/by_user_created".to_owned(),
        ),
        (app.config.signing_secret_id.clone(), "SigningKeys".to_owned()),
        (app.config.public_keys_secret_id.clone(), "PublicKeys".to_owned()),
        (app.config.oauth_client_secrets_id.clone(), "OAuthClientSecrets".to_owned()),
    ]);
    let granted = granted_by_function(&template());
    for (function, recorder) in &f.recorders {
        let granted = &granted[*function];
        let mut used = BTreeSet::new();
        for call in recorder.calls() {
            let resource = names
                .get(&call.resource)
                .cloned()
                .unwrap_or_else(|| panic!("{function} called {call:?} on an unknown resource"));
            let grant = (call.iam_action(), resource);
            if let Some(conditions) = granted.get(&grant)
                && let Some(why) = outside_grant(&call, conditions)
            {
                panic!("{function}: {call:?} is outside the condition of its grant in template.yaml: {why}");
            }
            used.insert(grant);
        }
        let granted: BTreeSet<_> = granted.keys().cloned().collect();
        let missing: Vec<_> = used.difference(&granted).collect();
        let unused: Vec<_> = granted.difference(&used).collect();
        assert!(missing.is_empty(), "{function} calls without permission in template.yaml: {missing:?}");
        assert!(unused.is_empty(), "{function} is granted what it never calls: {unused:?}");
    }
}
