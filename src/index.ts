// respond-async: the core entry. The runtime, the memory store, errors and the types a route and a store need.
export type { Backoff, BackoffOptions } from './core/backoff.js';
export {
  CanceledError,
  InputError,
  JobError,
  type JobErrorOptions,
  QueueFullError,
  RespondAsyncError,
  ShutdownError,
  StoreUnavailableError,
  TimeoutError,
  UnrecoverableError,
} from './core/errors.js';
export { isJobId, newJobId } from './core/ids.js';
export {
  type CloseOptions,
  createJobs,
  type DefineOptions,
  type JobDefinition,
  Jobs,
  type JobsOptions,
  type Logger,
  type SeeOther,
  type SubmitOptions,
  seeOther,
} from './core/runtime.js';
export type {
  AdminListOptions,
  AdminOutcome,
  AttemptRecord,
  CancelOutcome,
  ClaimOptions,
  CreateResult,
  DeliveryAttempt,
  DeliveryUpdate,
  JobCount,
  JobHistory,
  JobStore,
  JobTimings,
  LeaseState,
  ListOptions,
  ListPosition,
  Percentiles,
  SlotOffer,
  ThroughputBucket,
} from './core/store.js';
export {
  type DeliveryStatus,
  isTerminal,
  type JobChange,
  type JobContext,
  type JobErrorInfo,
  type JobEvent,
  type JobEvents,
  type JobHandler,
  type JobRecord,
  type JobStatus,
  type NewJob,
  type RequestSnapshot,
} from './core/types.js';
export {
  type JsonObject,
  jsonSchemaOf,
  mergeOpenApi,
  type OpenApiDocument,
  type OpenApiOptions,
  type OpenApiRoute,
  openapiDocument,
} from './http/openapi.js';
export type { StandardJSONSchemaV1, StandardSchemaV1 } from './http/standard-schema.js';
export type { RouteSchema, ValidationErrorItem } from './http/validation.js';
export {
  signWebhook,
  type VerifyWebhookOptions,
  verifyWebhook,
  type WebhookOptions,
  WebhookVerificationError,
} from './http/webhooks.js';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.js';
