//! Trace derivations, file formats and generators: properties against naive
//! references, round trips, and error messages that name the place.

use std::io::Write;
use std::path::PathBuf;

use memarena_core::NEVER;
use memarena_core::trace::{
    Column, CsvOptions, IdFormat, OracleOptions, SizeSpec, SynthSpec, Trace, first_access,
    generate, hash_str, next_access, read_csv, read_oracle_general, write_csv,
    write_oracle_general,
};
use proptest::prelude::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memarena-core-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir.join(name)
}

fn naive_next(ids: &[u64]) -> Vec<u64> {
    (0..ids.len())
        .map(|i| {
            (i + 1..ids.len())
                .find(|&j| ids[j] == ids[i])
                .map_or(NEVER, |j| j as u64)
        })
        .collect()
}

fn small_ids() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0u64..12, 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn next_access_matches_naive(ids in small_ids()) {
        prop_assert_eq!(next_access(&ids), naive_next(&ids));
        let naive_first: Vec<bool> = (0..ids.len()).map(|i| !ids[..i].contains(&ids[i])).collect();
        prop_assert_eq!(first_access(&ids), naive_first);
    }

    #[test]
    fn oracle_general_round_trip(
        recs in prop::collection::vec((0u64..50, 1u64..=u32::MAX as u64, 0u64..=u32::MAX as u64), 0..80),
        case in 0u32..1000,
    ) {
        let ids: Vec<u64> = recs.iter().map(|r| r.0 * 0x1_0000_0001).collect();
        let sizes: Vec<u64> = recs.iter().map(|r| r.1).collect();
        let times: Vec<u64> = recs.iter().map(|r| r.2).collect();
        let t = Trace::new(ids).with_sizes(Some(sizes)).unwrap().with_timestamps(Some(times)).unwrap();
        let path = scratch(&format!("rt-{case}.oracleGeneral.bin"));
        write_oracle_general(&path, &t).unwrap();
        prop_assert_eq!(std::fs::metadata(&path).unwrap().len(), 24 * t.len() as u64);
        let back = read_oracle_general(&path, &OracleOptions::default()).unwrap();
        std::fs::remove_file(&path).ok();
        prop_assert_eq!(back, t);
    }

    #[test]
    fn csv_round_trip(
        recs in prop::collection::vec((any::<u64>(), 1u64..1_000_000, any::<u64>()), 0..80),
        with_sizes in any::<bool>(),
        with_times in any::<bool>(),
        tab in any::<bool>(),
        case in 0u32..1000,
    ) {
        let ids: Vec<u64> = recs.iter().map(|r| r.0).collect();
        let t = Trace::new(ids)
            .with_sizes(with_sizes.then(|| recs.iter().map(|r| r.1).collect()))
            .unwrap()
            .with_timestamps(with_times.then(|| recs.iter().map(|r| r.2).collect()))
            .unwrap();
        let delimiter = if tab { b'\t' } else { b',' };
        let path = scratch(&format!("rt-{case}.csv"));
        write_csv(&path, &t, delimiter).unwrap();
        let opts = CsvOptions {
            delimiter,
            has_header: true,
            id_column: Column::Name("id".into()),
            id_format: IdFormat::Integer,
            size_column: with_sizes.then(|| Column::Name("size".into())),
            time_column: with_times.then(|| Column::Name("timestamp".into())),
        };
        let back = read_csv(&path, &opts).unwrap();
        std::fs::remove_file(&path).ok();
        prop_assert_eq!(back, t);
    }

    #[test]
    fn generators_are_deterministic(seed in any::<u64>(), which in 0usize..6, n in 0usize..300) {
        let spec = match which {
            0 => SynthSpec::Zipf { alpha: 0.9, n_objects: 100 },
            1 => SynthSpec::Uniform { n_objects: 17 },
            2 => SynthSpec::Loop { n_objects: 9 },
            3 => SynthSpec::Scan,
            4 => SynthSpec::Mix { components: vec![
                (0.7, SynthSpec::Zipf { alpha: 1.2, n_objects: 50 }),
                (0.3, SynthSpec::Scan),
            ] },
            _ => SynthSpec::Sized {
                inner: Box::new(SynthSpec::PhaseShift {
                    inner: Box::new(SynthSpec::Zipf { alpha: 0.7, n_objects: 30 }),
                    period: 40,
                    shift: 30,
                }),
                sizes: SizeSpec::Uniform { min_bytes: 1, max_bytes: 4096 },
            },
        };
        let a = generate(&spec, n, seed).unwrap();
        let b = generate(&spec, n, seed).unwrap();
        prop_assert_eq!(a.len(), n);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn different_seeds_give_different_traces() {
    let spec = SynthSpec::Zipf {
        alpha: 0.8,
        n_objects: 1000,
    };
    assert_ne!(
        generate(&spec, 200, 1).unwrap(),
        generate(&spec, 200, 2).unwrap()
    );
}

#[test]
fn zipf_generator_is_skewed() {
    let t = generate(
        &SynthSpec::Zipf {
            alpha: 1.0,
            n_objects: 1000,
        },
        50_000,
        3,
    )
    .unwrap();
    let top = t.ids().iter().filter(|&&id| id == 0).count() as f64 / t.len() as f64;
    // P(rank 1) = 1 / H_1000 ≈ 0.1336.
    assert!((top - 0.1336).abs() < 0.01, "{top}");
}

#[test]
fn oracle_truncated_file_names_the_offset() {
    let path = scratch("truncated.oracleGeneral.bin");
    write_oracle_general(&path, &Trace::new(vec![1, 2, 3])).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0u8; 10]).unwrap();
    drop(f);
    let err = read_oracle_general(&path, &OracleOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.oracleGeneral.bin"), "{err}");
    assert!(err.contains("byte offset 72"), "{err}");
    std::fs::remove_file(&path).ok();
}

fn record(time: u32, id: u64, size: u32, next: i64) -> Vec<u8> {
    let mut r = Vec::with_capacity(24);
    r.extend_from_slice(&time.to_le_bytes());
    r.extend_from_slice(&id.to_le_bytes());
    r.extend_from_slice(&size.to_le_bytes());
    r.extend_from_slice(&next.to_le_bytes());
    r
}

#[test]
fn oracle_size_zero_and_bad_next_access() {
    let path = scratch("zero.oracleGeneral.bin");
    let bytes = [
        record(1, 7, 10, 2),
        record(2, 8, 0, -1),
        record(3, 7, 10, i64::MAX),
    ]
    .concat();
    std::fs::write(&path, bytes).unwrap();
    // libCacheSim's default: size-0 records are skipped.
    let t = read_oracle_general(&path, &OracleOptions::default()).unwrap();
    assert_eq!(t.ids(), &[7, 7]);
    assert_eq!(t.next_vtime(), &[1, NEVER]);
    assert_eq!(t.timestamps().unwrap(), &[1, 3]);
    let err = read_oracle_general(
        &path,
        &OracleOptions {
            skip_zero_size: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("byte offset 24") && err.contains("size 0"),
        "{err}"
    );

    let bad = scratch("badnext.oracleGeneral.bin");
    std::fs::write(&bad, [record(1, 7, 10, -1), record(2, 7, 10, 0)].concat()).unwrap();
    let err = read_oracle_general(&bad, &OracleOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("byte offset 24") && err.contains("next_access_vtime"),
        "{err}"
    );
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(&bad).ok();
}

#[test]
fn reads_libcachesim_style_next_access() {
    // The reader recomputes next access from ids; what the file says must agree.
    let path = scratch("agree.oracleGeneral.bin");
    let t = generate(
        &SynthSpec::Zipf {
            alpha: 1.0,
            n_objects: 40,
        },
        500,
        5,
    )
    .unwrap();
    write_oracle_general(&path, &t).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (i, rec) in bytes.chunks_exact(24).enumerate() {
        let next = i64::from_le_bytes(rec[16..24].try_into().unwrap());
        let want = t.next_vtime()[i];
        assert_eq!(next, if want == NEVER { -1 } else { want as i64 });
    }
    std::fs::remove_file(&path).ok();
}

#[test]
fn csv_errors_name_file_row_and_column() {
    let path = scratch("bad.csv");
    std::fs::write(&path, "time,key,bytes\n1,10,100\n2,x11,100\n").unwrap();
    let opts = CsvOptions {
        id_column: Column::Name("key".into()),
        size_column: Some(Column::Name("bytes".into())),
        time_column: Some(Column::Index(0)),
        ..CsvOptions::default()
    };
    let err = read_csv(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("bad.csv") && err.contains("row 3") && err.contains("\"key\""),
        "{err}"
    );

    std::fs::write(&path, "time,key,bytes\n1,10,0\n").unwrap();
    let err = read_csv(&path, &opts).unwrap_err().to_string();
    assert!(err.contains("row 2") && err.contains("size 0"), "{err}");

    std::fs::write(&path, "time,key\n1,10\n").unwrap();
    let err = read_csv(&path, &opts).unwrap_err().to_string();
    assert!(err.contains("no column named \"bytes\""), "{err}");

    std::fs::write(&path, "1 10\n2\n").unwrap();
    let opts = CsvOptions {
        delimiter: b' ',
        has_header: false,
        id_column: Column::Index(1),
        ..CsvOptions::default()
    };
    let err = read_csv(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("row 2, column 1") && err.contains("missing field"),
        "{err}"
    );
    std::fs::remove_file(&path).ok();
}

#[test]
fn csv_string_ids_are_hashed() {
    let path = scratch("strings.csv");
    std::fs::write(&path, "op;key\nget;\"a;b\"\nset;user:42\n\nget;\"a;b\"\r\n").unwrap();
    let opts = CsvOptions {
        delimiter: b';',
        id_column: Column::Name("key".into()),
        id_format: IdFormat::Hash,
        ..CsvOptions::default()
    };
    let t = read_csv(&path, &opts).unwrap();
    assert_eq!(
        t.ids(),
        &[hash_str("a;b"), hash_str("user:42"), hash_str("a;b")]
    );
    assert_eq!(t.next_vtime(), &[2, NEVER, NEVER]);
    assert_eq!(t.sizes(), None);
    std::fs::remove_file(&path).ok();
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = read_csv("/nonexistent/trace.csv", &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/trace.csv"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any bytes: the readers return a trace or an error naming the file,
    /// one line, never a panic, never a whole long field quoted.
    #[test]
    fn readers_never_panic_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        junk in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut data = bytes.clone();
        data.extend_from_slice(&junk);
        let path = scratch("arbitrary.bin");
        std::fs::write(&path, &data).unwrap();
        let opts = CsvOptions {
            size_column: Some(Column::Index(1)),
            ..CsvOptions::default()
        };
        for res in [
            read_csv(&path, &opts).map(|t| t.len()),
            read_oracle_general(&path, &OracleOptions::default()).map(|t| t.len()),
        ] {
            if let Err(e) = res {
                let msg = e.to_string();
                prop_assert!(msg.starts_with(&path.display().to_string()), "{}", msg);
                prop_assert!(!msg.contains('\n'), "{}", msg);
                prop_assert!(msg.len() < 600, "{} bytes", msg.len());
            }
        }
    }

    /// The excerpt of any text is short, a prefix of it, and notes the length.
    #[test]
    fn excerpt_is_a_short_prefix(text in ".{0,300}") {
        let e = memarena_core::trace::excerpt(&text);
        let n = text.chars().count();
        if n <= memarena_core::trace::EXCERPT_CHARS {
            prop_assert_eq!(e, format!("{text:?}"));
        } else {
            let head: String = text.chars().take(memarena_core::trace::EXCERPT_CHARS).collect();
            prop_assert_eq!(e, format!("{head:?}... ({n} characters)"));
        }
    }
}

#[test]
fn csv_not_utf8_and_directories_are_named() {
    let path = scratch("latin1.csv");
    std::fs::write(&path, b"id\n1\n\xe9t\xe9\n").unwrap();
    let err = read_csv(&path, &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 3, byte offset 5") && err.contains("UTF-8"),
        "{err}"
    );
    std::fs::remove_file(&path).ok();
    let dir = scratch("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    for err in [
        read_csv(&dir, &CsvOptions::default()).unwrap_err(),
        read_oracle_general(&dir, &OracleOptions::default()).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(msg.contains("is a directory"), "{msg}");
        assert!(!msg.contains("truncated"), "{msg}");
    }
}
