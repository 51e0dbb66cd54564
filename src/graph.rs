//! Drawing a topology: Graphviz `dot` or Mermaid text, with parallelism on the nodes and the
//! grouping (and stream, when not `default`) on the edges.

use std::fmt::Write;

use topo_runtime::{DEFAULT_STREAM, Grouping, InputSpec, Role, Topology};

/// The text formats [`render`] can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz `dot`.
    Dot,
    /// Mermaid `flowchart`.
    Mermaid,
}

/// The edge label: grouping with its fields, prefixed by the stream when it is not `default`.
fn edge_label(input: &InputSpec) -> String {
    let grouping = match &input.grouping {
        Grouping::Fields(f) | Grouping::PartialKey(f) => {
            format!("{}({})", input.grouping.name(), f.join(", "))
        }
        other => other.name().to_string(),
    };
    if input.stream == DEFAULT_STREAM {
        grouping
    } else {
        format!("{}: {grouping}", input.stream)
    }
}

/// The topology drawn in `format`.
pub fn render(topology: &Topology, format: GraphFormat) -> String {
    let mut out = String::new();
    let ids: Vec<&str> = topology.component_ids().collect();
    match format {
        GraphFormat::Dot => {
            let _ = writeln!(out, "digraph {:?} {{", topology.name());
            out.push_str("  rankdir=LR;\n");
            for id in &ids {
                let Some(c) = topology.component(id) else {
                    continue;
                };
                let shape = match c.factory.role() {
                    Role::Spout => "box",
                    Role::Bolt => "ellipse",
                };
                let label = format!("{id}\n{} ×{}", c.factory.role(), c.parallelism);
                let _ = writeln!(out, "  {id:?} [shape={shape}, label={label:?}];");
            }
            for id in &ids {
                let Some(c) = topology.component(id) else {
                    continue;
                };
                for input in &c.inputs {
                    let _ = writeln!(
                        out,
                        "  {:?} -> {id:?} [label={:?}];",
                        input.component.as_str(),
                        edge_label(input)
                    );
                }
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            // Mermaid node ids must be plain; component ids are used through an index.
            let node = |id: &str| ids.iter().position(|x| *x == id).map(|i| format!("c{i}"));
            for (i, id) in ids.iter().enumerate() {
                let Some(c) = topology.component(id) else {
                    continue;
                };
                let text =
                    format!("{id} ({} ×{})", c.factory.role(), c.parallelism).replace('"', "'");
                let _ = match c.factory.role() {
                    Role::Spout => writeln!(out, "  c{i}[[\"{text}\"]]"),
                    Role::Bolt => writeln!(out, "  c{i}([\"{text}\"])"),
                };
            }
            for id in &ids {
                let Some(c) = topology.component(id) else {
                    continue;
                };
                for input in &c.inputs {
                    if let (Some(from), Some(to)) = (node(&input.component), node(id)) {
                        let label = edge_label(input).replace('"', "'").replace('|', "/");
                        let _ = writeln!(out, "  {from} -->|\"{label}\"| {to}");
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use topo_dsl::TopologyBuilder;
    use topo_runtime::testing::{CaptureBolt, VecSpout};

    fn topology() -> Topology {
        let mut b = TopologyBuilder::new("wc");
        b.set_spout("lines", VecSpout::new(["line"], vec![]).factory(), 1);
        b.set_bolt("sink", CaptureBolt::new().factory(), 3)
            .fields_grouping("lines", ["line"])
            .all_grouping("lines");
        b.build().expect("valid")
    }

    #[test]
    fn dot_shows_parallelism_and_groupings() {
        assert_eq!(
            render(&topology(), GraphFormat::Dot),
            "digraph \"wc\" {\n  rankdir=LR;\n  \"lines\" [shape=box, label=\"lines\\nspout ×1\"];\n  \"sink\" [shape=ellipse, label=\"sink\\nbolt ×3\"];\n  \"lines\" -> \"sink\" [label=\"fields(line)\"];\n  \"lines\" -> \"sink\" [label=\"all\"];\n}\n"
        );
    }

    #[test]
    fn mermaid_shows_parallelism_and_groupings() {
        assert_eq!(
            render(&topology(), GraphFormat::Mermaid),
            "flowchart LR\n  c0[[\"lines (spout ×1)\"]]\n  c1([\"sink (bolt ×3)\"])\n  c0 -->|\"fields(line)\"| c1\n  c0 -->|\"all\"| c1\n"
        );
    }
}
