//! Azure's published description of the route table API (`routeTable.json` and the
//! `network.json` it refers to, Swagger 2.0, api-version 2024-05-01), read from the `azure/`
//! folder of [`crate::api_descriptions`] (`../shared/reference/api/azure/` beside the clone), and the check the fake makes of every
//! `Microsoft.Network` request against it: the path must be one the description lists, the verb
//! one it lists for that path, the api-version its version, and every field of the body one its
//! definitions name (following `$ref`, `allOf`, array `items` and the `x-ms-client-flatten`ed
//! `properties`), not read-only. A request that fails gets ARM's 400 with the reason.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// The description files by name (`routeTable.json`, `network.json`).
pub struct Spec {
    files: BTreeMap<String, Value>,
}

/// Where Azure's descriptions are, if anywhere ([`crate::api_descriptions`]).
pub fn reference_dir() -> Option<PathBuf> {
    crate::api_descriptions().map(|dir| dir.join("azure"))
}

/// A reference file as published, e.g. `examples/RouteTableGet.json`; only for tests that
/// checked [`crate::descriptions_or_skip`].
pub fn reference(name: &str) -> Value {
    let dir = reference_dir().expect("the API descriptions (descriptions_or_skip first)");
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The description, loaded once per test process; `None` without descriptions.
pub fn spec() -> Option<&'static Spec> {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    reference_dir()?;
    Some(SPEC.get_or_init(|| {
        Spec {
            files: ["routeTable.json", "network.json"]
                .into_iter()
                .map(|f| (f.to_string(), reference(f)))
                .collect(),
        }
    }))
}

impl Spec {
    fn main(&self) -> &Value {
        &self.files["routeTable.json"]
    }

    /// The description's api-version (`info.version`).
    pub fn api_version(&self) -> &str {
        self.main()["info"]["version"].as_str().unwrap_or_default()
    }

    /// Whether `path` is under the API this description covers (route tables).
    pub fn covers(path: &str) -> bool {
        path.to_ascii_lowercase()
            .contains("/providers/microsoft.network/routetables")
    }

    /// Why `method path?query` with `body` is not a request the description defines, if it is not.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        api_version: Option<&str>,
        body: &str,
    ) -> Result<(), String> {
        let (template, operations) = self.main()["paths"]
            .as_object()
            .and_then(|paths| paths.iter().find(|(t, _)| template_matches(t, path)))
            .ok_or_else(|| format!("the path {path} is not in the description"))?;
        let operation = operations
            .get(method.to_ascii_lowercase())
            .ok_or_else(|| format!("{method} is not an operation of {template}"))?;
        match api_version {
            Some(v) if v == self.api_version() => {}
            other => {
                return Err(format!(
                    "api-version {} is not the description's {}",
                    other.unwrap_or("(none)"),
                    self.api_version()
                ))
            }
        }
        let schema = operation["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["in"] == "body"))
            .map(|p| p["schema"].clone());
        match (schema, body.trim().is_empty()) {
            (None, true) => Ok(()),
            (None, false) => Err(format!("{method} {template} takes no body")),
            (Some(_), true) => Err(format!("{method} {template} needs a body")),
            (Some(schema), false) => {
                let body: Value =
                    serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
                self.check_value(&body, &schema, "routeTable.json", "")
            }
        }
    }

    /// Checks the field names of `value` against `schema` (found in `file`); `at` is the path
    /// of `value` in the body, for the reason.
    pub fn check_value(
        &self,
        value: &Value,
        schema: &Value,
        file: &str,
        at: &str,
    ) -> Result<(), String> {
        let Some((schema, file)) = self.resolve(schema, file) else {
            return Ok(()); // a file not kept here (virtualNetwork.json): nothing to check against
        };
        match value {
            Value::Object(fields) => {
                if schema.get("additionalProperties").is_some() {
                    return Ok(()); // a map (tags): any key
                }
                let known = self.properties(&schema, &file);
                for (name, field) in fields {
                    let at = format!("{at}/{name}");
                    let (definition, def_file) = known
                        .get(name)
                        .ok_or_else(|| format!("the body field {at} is not in the description"))?;
                    if definition["readOnly"] == true {
                        return Err(format!("the body field {at} is read-only"));
                    }
                    self.check_value(field, definition, def_file, &at)?;
                }
                Ok(())
            }
            Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                self.check_value(item, &schema["items"], &file, &format!("{at}/{i}"))
            }),
            _ => Ok(()),
        }
    }

    /// The schema a `$ref` points at (and the file it is in); `None` for another file.
    fn resolve(&self, schema: &Value, file: &str) -> Option<(Value, String)> {
        let Some(reference) = schema["$ref"].as_str() else {
            return Some((schema.clone(), file.to_string()));
        };
        let (target_file, pointer) = reference.split_once('#')?;
        let target_file = match target_file.trim_start_matches("./") {
            "" => file.to_string(),
            other => other.to_string(),
        };
        let target = self.files.get(&target_file)?.pointer(pointer)?.clone();
        // A `$ref` beside `readOnly` keeps the flag.
        let mut target = target;
        if schema["readOnly"] == true {
            target["readOnly"] = Value::Bool(true);
        }
        self.resolve(&target, &target_file)
    }

    /// Every property an object schema names, its own and its `allOf` parents', with the file
    /// each definition is in.
    fn properties(&self, schema: &Value, file: &str) -> BTreeMap<String, (Value, String)> {
        let mut known = BTreeMap::new();
        for parent in schema["allOf"].as_array().into_iter().flatten() {
            if let Some((parent, parent_file)) = self.resolve(parent, file) {
                known.extend(self.properties(&parent, &parent_file));
            }
        }
        for (name, definition) in schema["properties"].as_object().into_iter().flatten() {
            known.insert(name.clone(), (definition.clone(), file.to_string()));
        }
        known
    }
}

/// Whether `path` fits a Swagger path template: `{…}` segments match any one segment, the
/// others ARM's way (case-insensitive).
fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t.eq_ignore_ascii_case(p)
        })
}
