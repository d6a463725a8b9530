// The examples' operator dashboard: with ADMIN_TOKEN set, mounted at /admin behind HTTP Basic authentication (user
// `admin`, password the token); without it, nothing is mounted. Shared by the Express, Fastify and Koa examples.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AdminOptions } from '../src/http/admin.js';

/** The admin options for requests whose `Authorization` header `authorization(req)` reads; undefined without ADMIN_TOKEN. */
export function adminFromEnv<Req>(authorization: (req: Req) => string | undefined): AdminOptions<Req> | undefined {
  const token = process.env.ADMIN_TOKEN;
  if (!token) return undefined;
  // Compared as digests: equal lengths for timingSafeEqual, and no early exit on the first differing byte.
  const digest = (text: string) => createHash('sha256').update(text).digest();
  const expected = digest(`Basic ${Buffer.from(`admin:${token}`).toString('base64')}`);
  return {
    authorize: (req) => (timingSafeEqual(digest(authorization(req) ?? ''), expected) ? true : 401),
    wwwAuthenticate: 'Basic realm="respond-async"',
    actor: () => 'admin',
  };
}
