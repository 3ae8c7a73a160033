// @feedback-service/web: the browser SDK and the <feedback-thumbs> widget of the feedback service.
// This module is the bundle served at /sdk/feedback-web.js; importing it registers <feedback-thumbs>.
export { createFeedbackClient, feedbackJson, newFeedbackId } from "./client.js";
export type { FeedbackClient, FeedbackClientOptions, FeedbackOptions } from "./client.js";
export { FeedbackError, decodeErrorDetails, errorFromConnectResponse } from "./errors.js";
export type { FeedbackErrorCode, FieldViolation, FeedbackErrorDetails } from "./errors.js";
export { connectJsonSender, CREATE_FEEDBACK_PATH } from "./sender.js";
export type { Sender, SendOptions } from "./sender.js";
export { retryDelay, DEFAULT_RETRY } from "./backoff.js";
export type { RetryPolicy } from "./backoff.js";
export type { OutboxEvent, SendResult, StorageLike, Environment } from "./outbox.js";
export { FeedbackThumbsElement, defineFeedbackThumbs, sharedClient } from "./widget.js";
export type { WidgetState } from "./widget.js";
export type { FeedbackJson, ThumbJson, SourceJson } from "./gen/feedback/v1/feedback_pb.js";

import { defineFeedbackThumbs } from "./widget.js";

defineFeedbackThumbs();
