//! Writes the fuzz targets' seed inputs (flowtable::fuzzing) into `DIR/<target>/`, one file per
//! input named by its content, so a corpus directory can be seeded again without duplicates:
//!
//!     cargo run -p flowtable --example fuzz_seeds -- flowtable/fuzz/corpus
//!
//! `packet_parser` gets the pipeline seeds' frames (without their selector byte).

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::path::Path;

use flowtable::fuzzing::{pipeline_seeds, pipeline_sequence_seeds};

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: fuzz_seeds DIR (writes DIR/packet_parser, DIR/pipeline, DIR/pipeline_stateful)");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    let pipeline = pipeline_seeds();
    let frames: Vec<Vec<u8>> = pipeline.iter().map(|s| s[1..].to_vec()).collect();
    for (target, inputs) in
        [("packet_parser", frames), ("pipeline", pipeline), ("pipeline_stateful", pipeline_sequence_seeds())]
    {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        for input in &inputs {
            let name = BuildHasherDefault::<DefaultHasher>::default().hash_one(input);
            std::fs::write(target_dir.join(format!("seed-{name:016x}")), input)?;
        }
        println!("{}: {} seeds", target_dir.display(), inputs.len());
    }
    Ok(())
}
