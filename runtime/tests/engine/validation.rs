//! Validation through the builder: one topology with many problems reports every one of them at
//! once, each naming its component (and input), with a suggestion where there is a near name.

use topo_runtime::testing::{CaptureBolt, VecSpout};
use topo_runtime::{BasicBolt, BasicCollector, BoxError, OutputDeclarer, TopologyBuilder, Tuple};

/// Passes words on: declares one `word` field.
struct Pass;

impl BasicBolt for Pass {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        out.emit(input.values().into());
        Ok(())
    }
}

// Guards: the builder reports every problem of a topology at once, with the exact message for each.
#[test]
fn every_problem_is_reported_at_once_with_exact_messages() {
    let words = VecSpout::new(["word"], Vec::new());
    let mut b = TopologyBuilder::new("broken");
    b.set_spout("words", words.factory(), 1);
    b.set_bolt("count", CaptureBolt::new().factory(), 2)
        .shuffle_grouping("wrods")
        .fields_grouping("words", ["wrd"])
        .shuffle_grouping_stream("words", "nope")
        .direct_grouping("words", "default");
    b.set_bolt("count", CaptureBolt::new().factory(), 1)
        .shuffle_grouping("words");
    b.set_bolt("a", || Pass, 0).shuffle_grouping("b");
    b.set_bolt("b", || Pass, 1).shuffle_grouping("a");
    let err = match b.build() {
        Ok(_) => panic!("a topology with 7 problems was accepted"),
        Err(e) => e,
    };
    assert_eq!(
        err.to_string(),
        "the topology is invalid (7 problems):\n\
         \x20 - bolt `count`: id is used by more than one component\n\
         \x20 - bolt `a`: parallelism must be at least 1, got 0\n\
         \x20 - bolt `count`, input 0: input from unknown component `wrods`; did you mean `words`?\n\
         \x20 - bolt `count`, input 1: grouping field `wrd` is not a field of stream `default` of `words` (its fields: word); did you mean `word`?\n\
         \x20 - bolt `count`, input 2: `words` declares no stream `nope` (its streams: default)\n\
         \x20 - bolt `count`, input 3: the direct grouping needs a direct stream, but `default` is not direct\n\
         \x20 - cyclic dependency: a -> b -> a\n"
    );
}
