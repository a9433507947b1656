//! A seeded, deterministic BSBM-like dataset: products of types and producers, with
//! features, numeric properties, offers by vendors and reviews by reviewers. The same
//! scale and seed always give the same triples, in the same order.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{self, Write};

pub const NS: &str = "http://bench.quadmesh.example/";
const INTEGER: &str = "http://www.w3.org/2001/XMLSchema#integer";

fn integer(n: u32) -> String {
    format!("\"{n}\"^^<{INTEGER}>")
}

/// N-Triples for `products` products (about 50 triples each).
#[cfg(test)]
pub fn generate(products: usize, seed: u64) -> String {
    let mut out = Vec::with_capacity(products * 4200);
    generate_into(products, seed, &mut out).expect("writing into memory");
    String::from_utf8(out).expect("generated N-Triples are UTF-8")
}

/// Writes the N-Triples for `products` products (about 50 triples each) into `out`, as
/// they are generated: the 10-million-triple dataset is never held in memory.
pub fn generate_into(products: usize, seed: u64, out: &mut impl Write) -> io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let types = (products / 50).max(5);
    let producers = (products / 20).max(3);
    let features = (products / 4).max(20);
    let vendors = (products / 25).max(3);
    let reviewers = (products / 5).max(10);
    let mut failed = None;
    let mut t = |out: &mut dyn Write, s: &str, p: &str, o: &str| {
        if failed.is_none() {
            failed = writeln!(out, "<{NS}{s}> <{NS}{p}> {o} .").err();
        }
    };
    for producer in 0..producers {
        t(
            out,
            &format!("producer{producer}"),
            "label",
            &format!("\"Producer {producer}\""),
        );
        t(
            out,
            &format!("producer{producer}"),
            "country",
            &format!("<{NS}country{}>", producer % 12),
        );
    }
    for p in 0..products {
        let s = format!("product{p}");
        t(
            out,
            &s,
            "type",
            &format!("<{NS}ProductType{}>", rng.random_range(0..types)),
        );
        t(
            out,
            &s,
            "label",
            &format!("\"product {p} {}\"", word(&mut rng)),
        );
        t(
            out,
            &s,
            "comment",
            &format!(
                "\"{} {} {}\"",
                word(&mut rng),
                word(&mut rng),
                word(&mut rng)
            ),
        );
        t(
            out,
            &s,
            "producer",
            &format!("<{NS}producer{}>", rng.random_range(0..producers)),
        );
        for _ in 0..5 {
            t(
                out,
                &s,
                "feature",
                &format!("<{NS}feature{}>", rng.random_range(0..features)),
            );
        }
        for n in 1..=3 {
            t(
                out,
                &s,
                &format!("numeric{n}"),
                &integer(rng.random_range(1..2000)),
            );
        }
        for o in 0..4 {
            let offer = format!("offer{p}_{o}");
            t(out, &offer, "product", &format!("<{NS}{s}>"));
            t(
                out,
                &offer,
                "vendor",
                &format!("<{NS}vendor{}>", rng.random_range(0..vendors)),
            );
            t(
                out,
                &offer,
                "price",
                &format!(
                    "\"{}.{:02}\"^^<http://www.w3.org/2001/XMLSchema#decimal>",
                    rng.random_range(5..5000),
                    rng.random_range(0..100)
                ),
            );
            t(
                out,
                &offer,
                "deliveryDays",
                &integer(rng.random_range(1..15)),
            );
            t(
                out,
                &offer,
                "validTo",
                &format!(
                    "\"2027-{:02}-{:02}\"^^<http://www.w3.org/2001/XMLSchema#date>",
                    rng.random_range(1..13),
                    rng.random_range(1..29)
                ),
            );
            t(out, &offer, "type", &format!("<{NS}Offer>"));
        }
        for r in 0..2 {
            let review = format!("review{p}_{r}");
            t(out, &review, "reviewFor", &format!("<{NS}{s}>"));
            t(
                out,
                &review,
                "reviewer",
                &format!("<{NS}reviewer{}>", rng.random_range(0..reviewers)),
            );
            t(out, &review, "rating", &integer(rng.random_range(1..11)));
            t(
                out,
                &review,
                "title",
                &format!("\"{} {}\"", word(&mut rng), word(&mut rng)),
            );
            t(
                out,
                &review,
                "text",
                &format!(
                    "\"{} {} {} {}\"@en",
                    word(&mut rng),
                    word(&mut rng),
                    word(&mut rng),
                    word(&mut rng)
                ),
            );
            t(out, &review, "type", &format!("<{NS}Review>"));
        }
    }
    failed.map_or(Ok(()), Err)
}

fn word(rng: &mut StdRng) -> &'static str {
    const WORDS: &[&str] = &[
        "alpha", "bright", "copper", "delta", "ember", "fable", "granite", "harbor", "ivory",
        "jade", "kernel", "lumen", "meadow", "nimbus", "onyx", "prism", "quartz", "river",
        "signal", "timber",
    ];
    WORDS[rng.random_range(0..WORDS.len())]
}

/// The query mix (BSBM-explore-like), each instantiated from a product or feature index.
pub fn queries(rng: &mut StdRng, products: usize) -> String {
    let features = (products / 4).max(20);
    let types = (products / 50).max(5);
    let p = rng.random_range(0..products);
    match rng.random_range(0..5) {
        0 => format!(
            "SELECT ?product ?label WHERE {{ ?product <{NS}type> <{NS}ProductType{}> ; <{NS}label> ?label ; <{NS}feature> <{NS}feature{}> ; <{NS}numeric1> ?n . FILTER(?n > 500) }} ORDER BY ?label LIMIT 10",
            rng.random_range(0..types),
            rng.random_range(0..features)
        ),
        1 => format!(
            "SELECT ?label ?comment ?producer ?f WHERE {{ <{NS}product{p}> <{NS}label> ?label ; <{NS}comment> ?comment ; <{NS}producer> ?producer ; <{NS}feature> ?f }}"
        ),
        2 => format!(
            "SELECT ?offer ?price ?vendor WHERE {{ ?offer <{NS}product> <{NS}product{p}> ; <{NS}price> ?price ; <{NS}vendor> ?vendor ; <{NS}deliveryDays> ?d . FILTER(?d <= 7) }} ORDER BY ?price LIMIT 5"
        ),
        3 => format!(
            "SELECT ?title ?rating ?reviewer WHERE {{ ?review <{NS}reviewFor> <{NS}product{p}> ; <{NS}title> ?title ; <{NS}rating> ?rating ; <{NS}reviewer> ?reviewer }} ORDER BY DESC(?rating)"
        ),
        _ => format!(
            "SELECT (COUNT(?offer) AS ?offers) (AVG(?rating) AS ?avg) WHERE {{ ?product <{NS}producer> ?producer . <{NS}product{p}> <{NS}producer> ?producer . ?offer <{NS}product> ?product . OPTIONAL {{ ?review <{NS}reviewFor> ?product ; <{NS}rating> ?rating }} }}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data() {
        assert_eq!(generate(30, 7), generate(30, 7));
        assert_ne!(generate(30, 7), generate(30, 8));
    }

    #[test]
    fn the_data_is_valid_n_triples_of_the_expected_size() {
        let data = generate(100, 1);
        let lines = data.lines().count();
        assert!(
            (4500..5500).contains(&lines),
            "{lines} triples for 100 products"
        );
        let parsed = oxrdfio::RdfParser::from_format(oxrdfio::RdfFormat::NTriples)
            .for_slice(data.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("valid N-Triples");
        assert_eq!(parsed.len(), lines);
    }
}
