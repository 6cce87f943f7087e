/**
 * The Deno TLS peer (`denotls`): what a Deno user would pick instead of
 * doorman, `Deno.listenTls` / `Deno.connectTls` (rustls, TLS 1.3) carrying
 * the baseline's 4-byte framing. The certificate is self-signed, made at
 * bench start with `openssl` (an ECDSA P-256 key, valid one day, for
 * 127.0.0.1); without `openssl` the peer is skipped with that reason.
 *
 * @module
 */

import { RawLink } from "./baseline.ts";

/** A self-signed certificate and its key, PEM, and the files holding them. */
export interface Certificate {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** What made it, for the report. */
  readonly version: string;
}

/**
 * Makes a self-signed certificate for 127.0.0.1 in `dir`.
 *
 * @returns The certificate, or a reason why there is none.
 */
export async function makeCertificate(
  dir: string,
): Promise<Certificate | { skip: string }> {
  const certFile = `${dir}/denotls.crt`;
  const keyFile = `${dir}/denotls.key`;
  let version: string;
  try {
    const output = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    version = new TextDecoder().decode(output.stdout).trim();
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=doorman bench",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        // rustls refuses a CA certificate as the server's own.
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        keyFile,
        "-out",
        certFile,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!made.success) {
      const detail = new TextDecoder().decode(made.stderr).trim();
      return { skip: `openssl cannot make a certificate: ${detail}` };
    }
  } catch {
    return {
      skip: "openssl not installed (needed for the self-signed certificate)",
    };
  }
  return {
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
    certFile,
    keyFile,
    version,
  };
}

/** Connects to the Deno TLS peer and completes the TLS handshake. */
export async function connectDenoTls(
  port: number,
  certificate: Certificate,
  options: { pushes?: boolean } = {},
): Promise<RawLink> {
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [certificate.cert],
  });
  try {
    await conn.handshake();
  } catch (error) {
    conn.close();
    throw error;
  }
  return new RawLink(conn, options);
}
