// The runtime module the entry points import: the Jobs runtime, its options and seeOther(), from their own files.
export {
  type CloseOptions,
  createJobs,
  type DefineOptions,
  type JobDefinition,
  Jobs,
  type JobsOptions,
  type Logger,
  type SubmitOptions,
} from './jobs.js';
export { publicError, type SeeOther, seeOther } from './outcome.js';
