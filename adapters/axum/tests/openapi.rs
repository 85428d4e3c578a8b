//! The OpenAPI document: what it describes, and that `openapi-spec-validator` accepts it.

mod common;

use std::process::Command;

use common::*;
use cqrs_ddd::App;
use cqrs_ddd::memory::{MemoryProjectionStore, MemoryStore};
use cqrs_ddd_axum::{Api, ContextLayer, JwtConfig};
use serde_json::Value;

async fn document() -> Value {
    let app = App::builder()
        .event_store(MemoryStore::new())
        .read_models(MemoryProjectionStore::new())
        .projection(Balances)
        .build()
        .expect("wired");
    let router = Api::new(app)
        .context(ContextLayer::new().jwt(JwtConfig::hs256(b"a shared secret of at least 32 bytes!")))
        .info("bank", "1.2.3")
        .commands()
        .queries()
        .read_model_with_schema::<BalanceView>()
        .health()
        .metrics(cqrs_ddd_axum::metrics::PrometheusMetrics::install().expect("the recorder installs"))
        .openapi()
        .router();
    let a = call(&router, get("/openapi.json", &[("authorization", &bearer(&hs_token()))])).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
}

fn hs_token() -> String {
    token(
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret of at least 32 bytes!"),
        None,
        &claims("ada", serde_json::json!({})),
    )
}

#[tokio::test]
async fn the_document_describes_messages_read_models_health_and_problems() {
    let doc = document().await;
    assert_eq!(doc["info"]["title"], "bank");
    let deposit = &doc["paths"]["/commands/Deposit"]["post"];
    let payload = &deposit["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(payload["properties"]["amount"]["type"], "integer", "the schema derived with ToSchema: {payload}");
    assert!(deposit["responses"]["422"]["$ref"].as_str().is_some_and(|r| r.ends_with("/Problem")), "{deposit}");
    assert!(deposit["responses"]["200"]["headers"]["x-cqrs-position"].is_object(), "{deposit}");
    assert!(deposit["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "idempotency-key"));
    // `Open` derives no schema: a generic object.
    let open = &doc["paths"]["/commands/Open"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(open["type"], "object", "{open}");
    let balance = &doc["paths"]["/queries/GetBalance"];
    assert!(balance["get"].is_object() && balance["post"].is_object(), "{balance}");
    assert_eq!(balance["get"]["responses"]["200"]["content"]["application/json"]["schema"]["type"], "integer");
    let page =
        &doc["paths"]["/read-models/balances"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        page["properties"]["items"]["items"]["properties"]["document"]["properties"]["balance"]["type"], "integer",
        "{page}"
    );
    assert!(doc["paths"]["/health/ready"]["get"]["responses"]["503"].is_object());
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object(), "{doc}");
    assert_eq!(
        doc["components"]["responses"]["Problem"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn openapi_spec_validator_accepts_the_document() {
    let doc = document().await;
    let path = std::env::temp_dir().join(format!("cqrs-ddd-axum-openapi-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let output = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("python3 runs (the OpenAPI test needs Python 3 with `pip install openapi-spec-validator`)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named openapi_spec_validator"),
        "the OpenAPI validator is missing: `pip install openapi-spec-validator`"
    );
    assert!(output.status.success(), "the document is not valid OpenAPI ({}):\n{stdout}\n{stderr}", path.display());
    std::fs::remove_file(&path).ok();
}
