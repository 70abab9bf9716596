//! The OpenAPI 3.1 document served at `GET /openapi.json`.
//!
//! Each dialect file describes its own operations in `openapi()`, beside
//! its route table and keyed by the same (method, path): a route and its
//! description change in one place, and `tests::document_and_tables_agree`
//! fails when the two sets differ. This module only holds the vocabulary
//! (`Op`, the schema helpers) and assembles the document of the enabled
//! dialects once, at start (`App::new`); the handler serves those bytes.
//!
//! Path parameters come from the patterns (`{id}`), so a route's pattern is
//! never written twice. Where two dialects share an operation (`POST
//! /auth/token`: yat for password bodies, native otherwise), the request
//! body and each response become an `anyOf` of both.

use serde_json::{json, Map, Value};

use super::Dialect;

/// One operation's description.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub spec: Value,
}

/// A new operation with a summary and no responses yet.
pub fn op(method: &'static str, path: &'static str, summary: &str) -> Op {
    Op {
        method,
        path,
        spec: json!({ "summary": summary, "responses": {} }),
    }
}

impl Op {
    /// A required JSON request body.
    pub fn body(mut self, schema: Value) -> Op {
        self.spec["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema } },
        });
        self
    }

    /// A JSON answer.
    pub fn json(mut self, status: u16, description: &str, schema: Value) -> Op {
        self.spec["responses"][status.to_string()] = json!({
            "description": description,
            "content": { "application/json": { "schema": schema } },
        });
        self
    }

    /// A text answer of this media type.
    pub fn json_text(mut self, status: u16, media: &str) -> Op {
        self.spec["responses"][status.to_string()] = json!({
            "description": "Text",
            "content": { media: { "schema": { "type": "string" } } },
        });
        self
    }

    /// An answer without a body.
    pub fn empty(mut self, status: u16, description: &str) -> Op {
        self.spec["responses"][status.to_string()] = json!({ "description": description });
        self
    }

    /// Error answers in a dialect's envelope (a schema in components).
    pub fn errors(mut self, envelope: &str, statuses: &[u16]) -> Op {
        for s in statuses {
            self.spec["responses"][s.to_string()] = json!({
                "description": "Error",
                "content": { "application/json": {
                    "schema": { "$ref": format!("#/components/schemas/{envelope}") }
                } },
            });
        }
        self
    }

    /// A header on an answer already described.
    pub fn resp_header(mut self, status: u16, name: &str, description: &str) -> Op {
        self.spec["responses"][status.to_string()]["headers"][name] = json!({
            "description": description,
            "schema": { "type": "string" },
        });
        self
    }

    /// Accepted credentials: any one of the named security schemes.
    pub fn security(mut self, schemes: &[&str]) -> Op {
        // "" is "no credentials" (an empty requirement), for optional ones.
        self.spec["security"] = schemes
            .iter()
            .map(|s| match *s {
                "" => json!({}),
                s => json!({ s: [] }),
            })
            .collect();
        self
    }

    /// A query parameter (a string unless `schema` says otherwise).
    pub fn query(self, name: &str, required: bool, schema: Value) -> Op {
        self.param("query", name, required, schema)
    }

    /// A request header the operation reads.
    pub fn header(self, name: &str, required: bool) -> Op {
        self.param("header", name, required, string())
    }

    fn param(mut self, place: &str, name: &str, required: bool, schema: Value) -> Op {
        let p = json!({ "name": name, "in": place, "required": required, "schema": schema });
        match self.spec["parameters"].as_array_mut() {
            Some(list) => list.push(p),
            None => self.spec["parameters"] = json!([p]),
        }
        self
    }
}

/// A JSON object with these required fields (others may be present).
pub fn obj(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

pub fn string() -> Value {
    json!({ "type": "string" })
}

pub fn int() -> Value {
    json!({ "type": "integer" })
}

pub fn boolean() -> Value {
    json!({ "type": "boolean" })
}

/// A string, or null.
pub fn opt_string() -> Value {
    json!({ "type": ["string", "null"] })
}

/// An integer, or null.
pub fn opt_int() -> Value {
    json!({ "type": ["integer", "null"] })
}

pub fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// A reference to a schema in components.
pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The security schemes and the schemas the dialects share.
fn components() -> Value {
    json!({
        "securitySchemes": {
            "bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An access token issued by hallpass.",
            },
            "apiKey": {
                "type": "http", "scheme": "bearer",
                "description": "An API key (`hallpass apikey create`, or POST /admin/api-keys), sent as a bearer; its scopes decide what it may do.",
            },
        },
        "schemas": {
            "NativeError": obj(&["error"], json!({
                "error": obj(&["statusCode", "name", "message", "code"], json!({
                    "statusCode": int(), "name": string(), "message": string(), "code": string(),
                    "details": array(obj(&["path", "code", "message"], json!({
                        "path": string(), "code": string(), "message": string(),
                    }))),
                })),
            })),
            "YatError": obj(&["error", "fields"], json!({
                "error": string(),
                "fields": { "type": "object", "additionalProperties": array(obj(
                    &["code", "message"], json!({ "code": string(), "message": string() }),
                )) },
            })),
            "MfaError": obj(&["message"], json!({
                "message": string(),
                "fields": { "type": "object", "additionalProperties": string() },
            })),
            "LagrelloError": obj(&["message", "errorType"], json!({
                "message": string(),
                "errorType": { "enum": [
                    "BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "CONFLICT",
                    "RATE_LIMITED", "INTERNAL_ERROR",
                ] },
            })),
        },
    })
}

/// `{id}` segments of a pattern, in order.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter(|s| s.starts_with('{') && s.ends_with('}'))
        .map(|s| &s[1..s.len() - 1])
}

/// `POST /admin/users/{id}` → `post_admin_users_id`; `-` is kept, so that
/// /auth/token-refresh and /auth/token/refresh stay apart.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            id.push(c);
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_string()
}

/// Two dialects' descriptions of one operation: bodies and each status's
/// answer become `anyOf` (the router picks by the body's shape).
fn merge(into: &mut Value, other: Value) {
    let any_of = |a: &Value, b: &Value| json!({ "anyOf": [a, b] });
    let body = "/requestBody/content/application~1json/schema";
    if let (Some(a), Some(b)) = (into.pointer(body).cloned(), other.pointer(body)) {
        if let Some(slot) = into.pointer_mut(body) {
            *slot = any_of(&a, b);
        }
    }
    let Some(theirs) = other["responses"].as_object() else {
        return;
    };
    for (status, resp) in theirs {
        let schema = "/content/application~1json/schema";
        match into["responses"].get(status).cloned() {
            None => into["responses"][status] = resp.clone(),
            Some(mine) => {
                if let (Some(a), Some(b)) = (mine.pointer(schema), resp.pointer(schema)) {
                    if a != b {
                        let merged = any_of(a, b);
                        if let Some(slot) = into["responses"][status].pointer_mut(schema) {
                            *slot = merged;
                        }
                    }
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (into["summary"].as_str(), other["summary"].as_str()) {
        into["summary"] = json!(format!("{a} / {b}"));
    }
}

/// The document for these route tables (the enabled dialects).
pub fn document(tables: &[Dialect]) -> Value {
    let mut paths = Map::new();
    for d in tables {
        for o in (d.openapi)() {
            let Op { method, path, spec } = o;
            let mut spec = spec;
            spec["tags"] = json!([d.name]);
            let params: Vec<Value> = path_params(path)
                .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": string() }))
                .collect();
            if !params.is_empty() {
                let mut all = params;
                if let Some(more) = spec["parameters"].as_array() {
                    all.extend(more.iter().cloned());
                }
                spec["parameters"] = Value::Array(all);
            }
            let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
            let m = method.to_ascii_lowercase();
            match item.get_mut(&m) {
                Some(existing) => merge(existing, spec),
                None => {
                    spec["operationId"] = json!(operation_id(method, path));
                    item[m] = spec;
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hallpass",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted authentication server speaking four dialects \
                (native SourceLoop, yat, mfa ShellHub, lagrello) plus its admin API. \
                Only the dialects enabled in [api] dialects are described. Client \
                credentials travel in the JSON body (client_id, client_secret) where the \
                native dialect asks for them. Unknown paths answer 404 and wrong methods 405 \
                (with Allow), in the native error envelope.",
        },
        "paths": paths,
        "components": components(),
    })
}

/// The document as served.
pub fn document_bytes(tables: &[Dialect]) -> String {
    document(tables).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::api::dialects;

    fn table_ops(tables: &[Dialect]) -> BTreeSet<(String, String)> {
        tables
            .iter()
            .flat_map(|d| d.routes.iter())
            .map(|r| (r.method.to_ascii_lowercase(), r.path.to_string()))
            .collect()
    }

    fn doc_ops(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                out.insert((method.clone(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn document_and_tables_agree() {
        // Every dialect alone, and all together: the document names exactly
        // the routes served, no more and no fewer.
        let sets: [&[&str]; 5] = [
            &["native"],
            &["yat"],
            &["mfa"],
            &["lagrello"],
            &["native", "yat", "mfa", "lagrello"],
        ];
        for on in sets {
            let tables = dialects(&|d| on.contains(&d));
            let doc = document(&tables);
            let (want, got) = (table_ops(&tables), doc_ops(&doc));
            let missing: Vec<_> = want.difference(&got).collect();
            let extra: Vec<_> = got.difference(&want).collect();
            assert!(
                missing.is_empty(),
                "{on:?}: undocumented routes {missing:?}"
            );
            assert!(extra.is_empty(), "{on:?}: documented, not routed {extra:?}");
        }
    }

    #[test]
    fn every_operation_has_answers_and_every_path_parameter_is_declared() {
        let doc = document(&dialects(&|_| true));
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, o) in item.as_object().into_iter().flatten() {
                let responses = o["responses"].as_object().map(|r| r.len()).unwrap_or(0);
                assert!(responses > 0, "{method} {path}: no responses");
                assert!(ids.insert(o["operationId"].to_string()), "{method} {path}");
                for p in path_params(path) {
                    let declared = o["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|x| x["in"] == "path" && x["name"] == p));
                    assert!(declared, "{method} {path}: {p}");
                }
                // Every $ref points at a schema that exists.
                let text = o.to_string();
                for (i, _) in text.match_indices("#/components/schemas/") {
                    let rest = &text[i + 21..];
                    let name: String = rest.chars().take_while(|c| *c != '"').collect();
                    assert!(
                        doc["components"]["schemas"].get(&name).is_some(),
                        "{method} {path}: {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn shared_token_route_merges_both_dialects() {
        let doc = document(&dialects(&|_| true));
        let o = &doc["paths"]["/auth/token"]["post"];
        let body = &o["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["anyOf"].as_array().map(Vec::len), Some(2));
        let doc = document(&dialects(&|d| d == "native"));
        let o = &doc["paths"]["/auth/token"]["post"];
        assert!(o["requestBody"]["content"]["application/json"]["schema"]["anyOf"].is_null());
    }
}
