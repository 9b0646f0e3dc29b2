//! A bulkhead sheds the calls a slow dependency cannot take, and a fallback answers them.
//!
//! Ten concurrent requests reach a service that takes 100 ms per call, behind a bulkhead of
//! 3 concurrent calls that lets a call wait up to 50 ms for a permit. Three calls get through at
//! once; the others wait, are rejected with `BulkheadFull` after 50 ms, and the fallback answers
//! them with a degraded response. Run with the `DEBUG` events shown:
//!
//! ```text
//! cargo run --example bulkhead_with_fallback
//! ```

use std::time::Duration;

use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::fallback::{FallbackLayer, RejectionsAndTimeouts};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .init();

    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(3)
        .max_wait(Duration::from_millis(50))
        .name("pricing")
        .build()?;

    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::new(|_: BoxError| Ok("price unavailable, try again".to_owned()))
                .when(RejectionsAndTimeouts)
                .name("pricing"),
        )
        .layer(bulkhead.clone())
        .service_fn(|item: u32| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, BoxError>(format!("item {item}: 9.99"))
        });

    let calls: Vec<_> = (0..10)
        .map(|item| {
            let mut service = service.clone();
            tokio::spawn(async move { service.ready().await?.call(item).await })
        })
        .collect();
    for call in calls {
        println!("{}", call.await??);
    }
    println!("permits free at the end: {}", bulkhead.available_permits());
    Ok(())
}
