//! docs/openapi.json is the schema the server serves (regenerate it with
//! `cargo run -p valori-node -- --openapi > docs/openapi.json`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

#[test]
fn docs_openapi_json_is_fresh() {
    let want = valori_node::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/openapi.json is stale: run `cargo run -p valori-node -- --openapi > docs/openapi.json`"
    );
    let spec: serde_json::Value = serde_json::from_str(&want).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    // Every operation documents the error shape and the bearer key.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in ["400", "401", "404", "422", "500"] {
                assert_eq!(
                    op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
            assert!(op["security"].is_array(), "{method} {path}");
        }
    }
}
