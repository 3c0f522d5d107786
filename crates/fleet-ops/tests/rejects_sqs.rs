//! The rejects tool's reading and holding of a real SQS API (moto behind the AWS front): what
//! moto can show. moto's short poll returns everything, so the difference a long poll makes is
//! shown with a message that arrives after an empty answer; the visibility extension with a hold
//! longer than the visibility timeout.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fleet_ops::rejects::{Polling, RejectsClient};

async fn queue(sdk: &aws_config::SdkConfig) -> String {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    sqs.create_queue()
        .queue_name(fleet_testkit::unique_name("rejects"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn send(sdk: &aws_config::SdkConfig, url: &str, body: &str) {
    aws_sdk_sqs::Client::new(sdk)
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

async fn visible(sdk: &aws_config::SdkConfig, url: &str) -> usize {
    let out = aws_sdk_sqs::Client::new(sdk)
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    out.messages.unwrap_or_default().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_arrives_after_an_empty_answer_is_still_listed() {
    let sdk = fleet_testkit::sdk_config().await;
    let url = queue(&sdk).await;
    let client = RejectsClient::new(&sdk, url.clone()).with_polling(Polling {
        hold_secs: 30,
        wait_secs: 1,
        empty_answers: 2,
    });
    let (listed, ()) = tokio::join!(client.list(), async {
        // After the first long poll (1 s) came back empty, during the second.
        tokio::time::sleep(Duration::from_millis(1_400)).await;
        send(&sdk, &url, "{\"late\": true}").await;
    });
    let listed = listed.unwrap();
    assert_eq!(listed.len(), 1, "one empty answer is not an empty queue");
    assert_eq!(visible(&sdk, &url).await, 1, "listing consumed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_held_longer_than_their_visibility_timeout_stay_invisible() {
    let sdk = fleet_testkit::sdk_config().await;
    let url = queue(&sdk).await;
    for i in 0..3 {
        send(&sdk, &url, &format!("{{\"n\": {i}}}")).await;
    }
    let client = RejectsClient::new(&sdk, url.clone()).with_polling(Polling {
        hold_secs: 2,
        wait_secs: 1,
        empty_answers: 1,
    });
    let all = client.fetch_all().await.unwrap();
    assert_eq!(all.len(), 3);
    let receipts: Vec<String> = all.iter().map(|r| r.receipt_handle.clone()).collect();
    let held = client.hold(&receipts);
    // A slow replay: well past the 2 s visibility timeout.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        visible(&sdk, &url).await,
        0,
        "held messages must not be received again mid-replay"
    );
    drop(held);
    client.release(&receipts).await.unwrap();
    assert_eq!(visible(&sdk, &url).await, 3, "released at the end");
}
