//! Google's discovery documents (the `gcp/` folder of [`crate::api_descriptions`],
//! `../shared/reference/api/gcp/` beside the clone), read at test time, as the GCP
//! fake's judge: a request whose path, verb, query parameter or body field name the
//! description does not define is refused with the reason, as Google refuses it (400
//! `INVALID_ARGUMENT`, `Invalid JSON payload received. Unknown name …`); and every answer the
//! fake gives is held against the method's response schema, so the fake cannot drift either.

use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

/// One method of a discovery document.
pub struct Method {
    /// `compute.routes.insert`
    pub id: String,
    pub verb: String,
    /// The full path template after the host: `compute/v1/projects/{project}/global/routes`.
    template: String,
    /// Parameters that go in the query string.
    query: Vec<String>,
    pub request: Option<String>,
    pub response: Option<String>,
}

/// A discovery document, its methods flattened.
pub struct Api {
    methods: Vec<Method>,
    standard: Vec<String>,
    schemas: serde_json::Map<String, Value>,
    /// The document's own text, for examples quoted in its descriptions.
    text: String,
}

fn load(dir: &Path, file: &str) -> Api {
    let path = dir.join("gcp").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the GCP fake checks requests against it (shared/ sits beside the clone)",
            path.display()
        )
    });
    let doc: Value = serde_json::from_str(&text).expect("a discovery document");
    let service = doc["servicePath"].as_str().unwrap_or("").to_string();
    let mut methods = Vec::new();
    collect(&doc["resources"], &service, &mut methods);
    Api {
        methods,
        standard: keys(&doc["parameters"]),
        schemas: doc["schemas"].as_object().cloned().unwrap_or_default(),
        text,
    }
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn collect(resources: &Value, service: &str, out: &mut Vec<Method>) {
    for resource in resources.as_object().into_iter().flat_map(|o| o.values()) {
        for method in resource["methods"]
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
        {
            let params = method["parameters"].as_object();
            out.push(Method {
                id: method["id"].as_str().unwrap_or("").to_string(),
                verb: method["httpMethod"].as_str().unwrap_or("").to_string(),
                template: format!("{service}{}", method["path"].as_str().unwrap_or("")),
                query: params
                    .into_iter()
                    .flat_map(|o| o.iter())
                    .filter(|(_, p)| p["location"] == "query")
                    .map(|(name, _)| name.clone())
                    .collect(),
                request: method["request"]["$ref"].as_str().map(str::to_string),
                response: method["response"]["$ref"].as_str().map(str::to_string),
            });
        }
        collect(&resource["resources"], service, out);
    }
}

/// Compute Engine v1.
pub fn compute() -> Option<&'static Api> {
    static API: OnceLock<Api> = OnceLock::new();
    let dir = crate::api_descriptions()?;
    Some(API.get_or_init(|| load(dir, "compute.v1.json")))
}

/// Cloud Resource Manager v3.
pub fn resource_manager() -> Option<&'static Api> {
    static API: OnceLock<Api> = OnceLock::new();
    let dir = crate::api_descriptions()?;
    Some(API.get_or_init(|| load(dir, "cloudresourcemanager.v3.json")))
}

/// The fully-qualified base of resource URLs, as the Compute description's own examples of a
/// network URL show it (`<base>/projects/project/global/networks/network`).
/// `None` without descriptions.
pub fn resource_base() -> Option<String> {
    let text = &compute()?.text;
    let example = "/projects/project/global/networks/network";
    let end = text.find(example).expect("a network URL example");
    let start = text[..end].rfind("https://").expect("the example's scheme");
    Some(text[start..end].to_string())
}

/// Does `path` match `template`? `{name}` is one path segment, `{+name}` one or more.
fn matches(template: &str, path: &str) -> bool {
    match template.find('{') {
        None => template == path,
        Some(open) => {
            let Some(rest) = path.strip_prefix(&template[..open]) else {
                return false;
            };
            let close = template[open..]
                .find('}')
                .map_or(template.len(), |i| open + i);
            let (plus, after) = (
                template[open + 1..].starts_with('+'),
                &template[close + 1..],
            );
            (1..=rest.len()).any(|n| {
                rest.is_char_boundary(n)
                    && (plus || !rest[..n].contains('/'))
                    && matches(after, &rest[n..])
            })
        }
    }
}

impl Api {
    /// The method `verb path` calls (`path` without the leading `/`), or why there is none.
    pub fn method(&self, verb: &str, path: &str) -> Result<&Method, String> {
        let found: Vec<&Method> = self
            .methods
            .iter()
            .filter(|m| matches(&m.template, path))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "no method of the API description has the path /{path}"
            ));
        }
        found
            .iter()
            .find(|m| m.verb == verb)
            .copied()
            .ok_or_else(|| {
                let ids: Vec<String> = found
                    .iter()
                    .map(|m| format!("{} {}", m.verb, m.id))
                    .collect();
                format!(
                    "/{path} does not take {verb} (the description has {})",
                    ids.join(", ")
                )
            })
    }

    /// A query parameter neither the method nor the API's standard parameters define.
    pub fn check_query(&self, method: &Method, names: &[String]) -> Result<(), String> {
        match names
            .iter()
            .find(|n| !method.query.contains(n) && !self.standard.contains(n))
        {
            Some(name) => Err(format!(
                "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. ({} takes {:?})",
                method.id, method.query
            )),
            None => Ok(()),
        }
    }

    /// The first body field the method's request schema does not define, as Google words it.
    pub fn check_body(&self, method: &Method, body: &str) -> Result<(), String> {
        let Some(schema) = &method.request else {
            return match body.trim() {
                "" | "{}" => Ok(()),
                _ => Err(format!("{} takes no request body", method.id)),
            };
        };
        let value: Value = serde_json::from_str(body)
            .map_err(|e| format!("Invalid JSON payload received. {e}"))?;
        match self.unknown(&Value::String(schema.clone()), &value, "resource").first() {
            Some((at, name)) => Err(format!(
                "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
            )),
            None => Ok(()),
        }
    }

    /// Field names of an answer that the method's response schema does not define.
    pub fn answer_drift(&self, method: &Method, answer: &str) -> Vec<String> {
        let (Some(schema), Ok(value)) = (&method.response, serde_json::from_str::<Value>(answer))
        else {
            return Vec::new();
        };
        self.unknown(&Value::String(schema.clone()), &value, schema)
            .into_iter()
            .map(|(at, name)| format!("{}: {at}.{name} is not in the description", method.id))
            .collect()
    }

    /// `(where, name)` of every field of `value` that `schema` (a schema object, or a schema's
    /// name as a string) does not define, walking `$ref`, `properties`, `items` and
    /// `additionalProperties`.
    fn unknown(&self, schema: &Value, value: &Value, at: &str) -> Vec<(String, String)> {
        let schema = match schema.as_str().or(schema["$ref"].as_str()) {
            Some(name) => match self.schemas.get(name) {
                Some(s) => s,
                None => return vec![(at.to_string(), format!("(schema {name} missing)"))],
            },
            None => schema,
        };
        match value {
            Value::Object(fields) => {
                let props = schema["properties"].as_object();
                let extra = &schema["additionalProperties"];
                fields
                    .iter()
                    .flat_map(|(name, v)| match props.and_then(|p| p.get(name)) {
                        Some(s) => self.unknown(s, v, &format!("{at}.{name}")),
                        None if !extra.is_null() => self.unknown(extra, v, &format!("{at}.{name}")),
                        None if props.is_none() => Vec::new(),
                        None => vec![(at.to_string(), name.clone())],
                    })
                    .collect()
            }
            Value::Array(items) if !schema["items"].is_null() => items
                .iter()
                .flat_map(|v| self.unknown(&schema["items"], v, at))
                .collect(),
            _ => Vec::new(),
        }
    }
}
