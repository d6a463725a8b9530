// Kept so that imports of `src/testing.js` still resolve: the conformance suite now lives in src/testing/.
export * from './testing/index.js';
