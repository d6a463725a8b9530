// The older majors the peer ranges promise (installed as npm aliases), typed as the current ones.
declare module 'express4' {
  import express from 'express';
  export default express;
}
declare module 'koa2' {
  import Koa from 'koa';
  export default Koa;
}
