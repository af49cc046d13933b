//! `ctl get`: tables, `-o json|yaml|name|jsonpath|custom-columns`,
//! `--output-version=v1beta1`, `-w`.

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::Value;

use crate::client::Ctl;
use crate::printers::{self, Output, TableOptions};
use crate::resources::{self, Selection};
use crate::{emit, report, GlobalArgs};

/// Flags of `get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME...
    pub resources: Vec<String>,
    /// Output format: wide|json|yaml|name|jsonpath=...|custom-columns=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector (`app=web`, `tier in (a,b)`, `!x`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`metadata.name=web`, `status.phase=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing first.
    #[arg(long)]
    pub watch_only: bool,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// Leave the header row out.
    #[arg(long)]
    pub no_headers: bool,
    /// API version to print objects in (`v1`, or `v1beta1` for the 2014 shape).
    #[arg(long)]
    pub output_version: Option<String>,
}

/// Runs `get`.
///
/// # Errors
///
/// Bad arguments, connection failures, server errors (every object found is
/// still printed before a not-found is reported).
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let output = Output::parse(args.output.as_deref())?;
    let selections = resources::parse(&args.resources)?;
    let ctl = global.connect().await?;
    let namespace = (!args.all_namespaces).then(|| ctl.namespace.clone());
    match args.output_version.as_deref() {
        None | Some("v1") => {}
        Some("v1beta1") => {
            if output.is_table() {
                bail!("--output-version=v1beta1 needs -o json, yaml or jsonpath")
            }
            return v1beta1(&ctl, &args, &selections, &output, namespace.as_deref()).await;
        }
        Some(other) => bail!("--output-version {other:?} is not served (use v1 or v1beta1)"),
    }
    if args.watch || args.watch_only {
        let [selection] = selections.as_slice() else {
            bail!("watch is only supported on a single resource type")
        };
        return watch(&ctl, &args, selection, &output, namespace.as_deref()).await;
    }
    let single = selections.len() == 1 && selections[0].names.len() == 1;
    let mut failures = Vec::new();
    let mut tables = Vec::new();
    let mut all_items = Vec::new();
    for selection in &selections {
        let (items, _) = fetch(&ctl, &args, selection, namespace.as_deref(), &mut failures).await?;
        if output.is_table() {
            tables.push((selection, items));
        } else {
            all_items.extend(items.into_iter().map(|i| (selection.resource, i)));
        }
    }
    if let Output::Table { wide } = output {
        let options = TableOptions {
            wide,
            show_labels: args.show_labels,
            no_headers: args.no_headers,
            namespace_column: args.all_namespaces,
            kind_prefix: selections.len() > 1,
        };
        print_tables(
            &tables,
            options,
            &ctl,
            namespace.as_deref(),
            failures.is_empty(),
        );
    } else if !all_items.is_empty() || !single {
        let resource = all_items
            .first()
            .map_or(selections[0].resource, |(r, _)| *r);
        let items = all_items
            .into_iter()
            .map(|(r, i)| printers::with_type(r, i))
            .collect();
        emit(&printers::print_objects(&output, resource, items, single));
    }
    report(failures)
}

fn print_tables(
    tables: &[(&Selection, Vec<Value>)],
    options: TableOptions,
    ctl: &Ctl,
    namespace: Option<&str>,
    no_failures: bool,
) {
    let now = jiff::Timestamp::now();
    let mut printed = false;
    for (selection, items) in tables {
        if items.is_empty() {
            continue;
        }
        let (header, rows) = printers::table_rows(selection.resource, items, options, now);
        let mut all = Vec::new();
        if !options.no_headers {
            all.push(header);
        }
        all.extend(rows);
        if printed {
            emit("\n");
        }
        emit(&printers::render(&all));
        printed = true;
    }
    if !printed && no_failures {
        let namespaced = tables.iter().any(|(s, _)| s.resource.namespaced);
        match namespace {
            Some(_) if namespaced => {
                eprintln!("No resources found in {} namespace.", ctl.namespace);
            }
            _ => eprintln!("No resources found"),
        }
    }
}

/// The v1 objects of a selection (listed, or fetched by name) and the list's
/// resourceVersion. Objects that are missing go to `failures`.
async fn fetch(
    ctl: &Ctl,
    args: &Args,
    selection: &Selection,
    namespace: Option<&str>,
    failures: &mut Vec<anyhow::Error>,
) -> Result<(Vec<Value>, String)> {
    let resource = selection.resource;
    if selection.names.is_empty() {
        let path = resources::with_query(
            &resources::collection_path(resource, namespace),
            &[
                ("labelSelector", args.selector.as_deref()),
                ("fieldSelector", args.field_selector.as_deref()),
            ],
        );
        let list = ctl
            .get(&path)
            .await
            .with_context(|| format!("listing {}", resource.plural))?;
        let version = list
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let items = list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        return Ok((items, version));
    }
    let ns = namespace.unwrap_or(&ctl.namespace);
    let mut items = Vec::new();
    for name in &selection.names {
        match ctl.get(&resources::object_path(resource, ns, name)).await {
            Ok(object) => items.push(object),
            Err(crate::client::Error::Api(e)) => failures.push(e.into()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok((items, String::new()))
}

async fn v1beta1(
    ctl: &Ctl,
    args: &Args,
    selections: &[Selection],
    output: &Output,
    namespace: Option<&str>,
) -> Result<()> {
    let mut failures = Vec::new();
    for selection in selections {
        let resource = selection.resource;
        let mut paths = Vec::new();
        let no_v1beta1 = || anyhow::anyhow!("{} are not served by v1beta1", resource.plural);
        if selection.names.is_empty() {
            let path = resources::v1beta1_path(resource, namespace, None).ok_or_else(no_v1beta1)?;
            paths.push(resources::with_query(
                &path,
                &[
                    ("labels", args.selector.as_deref()),
                    ("fields", args.field_selector.as_deref()),
                ],
            ));
        } else {
            let ns = namespace.unwrap_or(&ctl.namespace);
            for name in &selection.names {
                paths.push(
                    resources::v1beta1_path(resource, Some(ns), Some(name))
                        .ok_or_else(no_v1beta1)?,
                );
            }
        }
        for path in paths {
            match ctl.get(&path).await {
                Ok(object) => emit(&match output {
                    Output::Json => printers::to_json(&object),
                    Output::Yaml => printers::to_yaml(&object),
                    Output::JsonPath(template) => template.render(&object),
                    _ => bail!("--output-version=v1beta1 needs -o json, yaml or jsonpath"),
                }),
                Err(crate::client::Error::Api(e)) => failures.push(e.into()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    report(failures)
}

async fn watch(
    ctl: &Ctl,
    args: &Args,
    selection: &Selection,
    output: &Output,
    namespace: Option<&str>,
) -> Result<()> {
    let resource = selection.resource;
    let mut field_selector = args.field_selector.clone();
    if let [name] = selection.names.as_slice() {
        let by_name = format!("metadata.name={name}");
        field_selector = Some(match field_selector {
            Some(f) => format!("{f},{by_name}"),
            None => by_name,
        });
    } else if selection.names.len() > 1 {
        bail!("watch takes at most one name");
    }
    let options = TableOptions {
        wide: matches!(output, Output::Table { wide: true }),
        show_labels: args.show_labels,
        no_headers: args.no_headers,
        namespace_column: args.all_namespaces,
        kind_prefix: false,
    };
    let now = jiff::Timestamp::now();
    let mut widths: Vec<usize> = Vec::new();
    let mut version = String::new();
    if !args.watch_only {
        let mut failures = Vec::new();
        let listed = Selection {
            resource,
            names: Vec::new(),
        };
        let list_args = Args {
            field_selector: field_selector.clone(),
            selector: args.selector.clone(),
            resources: Vec::new(),
            output: None,
            all_namespaces: false,
            watch: false,
            watch_only: false,
            show_labels: false,
            no_headers: false,
            output_version: None,
        };
        let (items, rv) = fetch(ctl, &list_args, &listed, namespace, &mut failures).await?;
        version = rv;
        if output.is_table() {
            let (header, rows) = printers::table_rows(resource, &items, options, now);
            let mut all = Vec::new();
            if !args.no_headers {
                all.push(header);
            }
            all.extend(rows);
            emit(&aligned(&all, &mut widths));
        } else {
            for item in items {
                emit(&printers::print_objects(
                    output,
                    resource,
                    vec![printers::with_type(resource, item)],
                    true,
                ));
            }
        }
    }
    let path = resources::with_query(
        &resources::collection_path(resource, namespace),
        &[
            ("watch", Some("true")),
            ("resourceVersion", Some(version.as_str())),
            ("labelSelector", args.selector.as_deref()),
            ("fieldSelector", field_selector.as_deref()),
        ],
    );
    let mut events = Box::pin(ctl.watch(&path).await.context("starting the watch")?);
    while let Some(event) = events.next().await {
        let event = event?;
        let object = event.get("object").cloned().unwrap_or(Value::Null);
        if event.get("type").and_then(Value::as_str) == Some("ERROR") {
            let message = object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the watch failed");
            bail!("watch error: {message}");
        }
        if output.is_table() {
            let (_, rows) =
                printers::table_rows(resource, &[object], options, jiff::Timestamp::now());
            emit(&aligned(&rows, &mut widths));
        } else {
            emit(&printers::print_objects(
                output,
                resource,
                vec![printers::with_type(resource, object)],
                true,
            ));
        }
    }
    Ok(())
}

/// Renders rows padded to at least the widths seen so far, so streamed rows
/// line up under the first table.
fn aligned(rows: &[Vec<String>], widths: &mut Vec<usize>) -> String {
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
