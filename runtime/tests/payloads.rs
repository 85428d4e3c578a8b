//! Payloads that would not read back are refused when they are staged, before anything
//! is written: non-finite floats (serde_json writes them as `null`), and any
//! serialization that its own deserialization refuses.
#![allow(clippy::float_cmp)] // the values compared are exact binary fractions

use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{EventStore, StreamKey};
use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    reading: Reading,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    value: f64,
}

/// Serializes as a string that its `Deserialize` refuses.
#[derive(Debug, Clone)]
struct Lossy;

impl Serialize for Lossy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("lossy")
    }
}

impl<'de> Deserialize<'de> for Lossy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let _ = u32::deserialize(d)?;
        Ok(Lossy)
    }
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tagged {
    tag: Lossy,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Measured, Tagged), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Sensor {
    last: f64,
    readings: u32,
}

#[aggregate]
impl Sensor {
    #[handle(create_if_missing)]
    fn measure(&self, cmd: &Measure) -> Result<Vec<SensorEvent>, Never> {
        Ok(vec![Measured { reading: Reading { value: cmd.value } }.into()])
    }

    #[handle(create_if_missing)]
    fn tag(&self, _cmd: &Tag) -> Result<Vec<SensorEvent>, Never> {
        Ok(vec![Tagged { tag: Lossy }.into()])
    }

    #[apply]
    fn measured(&mut self, e: &Measured) {
        self.last = e.reading.value;
        self.readings += 1;
    }

    #[apply]
    fn tagged(&mut self, _e: &Tagged) {}
}

#[command(aggregate = Sensor)]
#[derive(Serialize, Deserialize)]
struct Measure {
    #[id]
    sensor: String,
    value: f64,
}

#[command(aggregate = Sensor)]
struct Tag {
    #[id]
    sensor: String,
}

/// A state-stored aggregate whose state itself can hold a non-finite float.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scaled {
    factor: u32,
}

#[aggregate(id = String, events(Scaled), error = Never, state_stored)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Gauge {
    ratio: f64,
}

#[aggregate]
impl Gauge {
    #[handle(create_if_missing)]
    fn scale(&self, cmd: &Scale) -> Result<Vec<GaugeEvent>, Never> {
        Ok(vec![Scaled { factor: cmd.factor }.into()])
    }

    #[apply]
    fn scaled(&mut self, e: &Scaled) {
        self.ratio = 1.0 / f64::from(e.factor);
    }
}

#[command(aggregate = Gauge)]
struct Scale {
    #[id]
    gauge: String,
    factor: u32,
}

fn app() -> (Mediator, MemoryStore) {
    let store = MemoryStore::new();
    (App::builder().event_store(store.clone()).build().unwrap(), store)
}

#[tokio::test]
async fn a_non_finite_float_is_refused_at_staging_naming_the_event_and_field() {
    let (app, store) = app();
    app.send(Measure { sensor: "s1".into(), value: 1.5 }).await.unwrap();
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = app.send(Measure { sensor: "s1".into(), value }).await.unwrap_err();
        let Error::Serialization { stream, version, event_type, .. } = &err else {
            panic!("expected a serialization error, got {err:?}")
        };
        assert_eq!((stream.as_str(), *version, event_type.as_str()), ("Sensor/s1", 2_u64, "Measured"));
        assert!(err.to_string().contains("field `reading.value`"), "{err}");
        assert!(!err.is_transient(), "a refused payload is not worth a retry: {err}");
    }
    // Nothing was written and the stream still loads.
    assert_eq!(store.stream_version(&StreamKey::new("Sensor", "s1")).await.unwrap(), 1);
    let loaded = app.load::<Sensor>(&"s1".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.readings), (1, 1));
    app.send(Measure { sensor: "s1".into(), value: 2.5 }).await.unwrap();
    assert_eq!(app.load::<Sensor>(&"s1".to_owned()).await.unwrap().state.last, 2.5);
}

#[tokio::test]
async fn a_payload_its_own_deserialize_refuses_is_refused_at_staging() {
    let (app, store) = app();
    let err = app.send(Tag { sensor: "s2".into() }).await.unwrap_err();
    assert!(matches!(&err, Error::Serialization { event_type, .. } if event_type == "Tagged"), "{err:?}");
    assert!(err.to_string().contains("field `tag`"), "{err}");
    assert_eq!(store.stream_version(&StreamKey::new("Sensor", "s2")).await.unwrap(), 0);
}

#[tokio::test]
async fn a_state_row_that_would_not_read_back_is_refused() {
    let (app, store) = app();
    app.send(Scale { gauge: "g".into(), factor: 4 }).await.unwrap();
    // 1 / 0 is infinite: the state row would be stored as `null` and never load again.
    let err = app.send(Scale { gauge: "g".into(), factor: 0 }).await.unwrap_err();
    assert!(matches!(&err, Error::Encode { what, .. } if what.contains("Gauge/g")), "{err:?}");
    assert!(err.to_string().contains("field `ratio`"), "{err}");
    assert_eq!(store.stream_version(&StreamKey::new("Gauge", "g")).await.unwrap(), 1);
    assert_eq!(app.load::<Gauge>(&"g".to_owned()).await.unwrap().state.ratio, 0.25);
}

#[tokio::test]
async fn a_command_that_would_not_read_back_is_not_scheduled() {
    let (app, _) = app();
    let at = chrono::Utc::now();
    let err = app.schedule(&Measure { sensor: "s3".into(), value: f64::NAN }, at).await.unwrap_err();
    assert!(matches!(&err, Error::Encode { what, .. } if what == "Measure"), "{err:?}");
    assert!(err.to_string().contains("field `value`"), "{err}");
    app.schedule(&Measure { sensor: "s3".into(), value: 1.0 }, at).await.unwrap();
}
