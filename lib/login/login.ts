/**
 * Layer 4, login: drives SCRAM-SHA-256 (scram_client.ts, scram_server.ts)
 * or, for a legacy md5 line, the password check and upgrade, over `login`
 * records of an open Channel (docs/PROTOCOL.md, "Login"). It sends and
 * checks; the math lives in scram*.ts and the file in user_store.ts. It
 * does not delay or penalise: the server core does, with the typed error
 * this layer throws.
 *
 * @module
 */

import { concatBytes, fromUtf8, utf8 } from "../wire/bytes.ts";
import type { Channel, ChannelRecord } from "../wire/channel.ts";
import { constantTimeEqual } from "../wire/crypto.ts";
import { ClosedError, LoginRejectedError, ProtocolError } from "../errors.ts";
import { raceSignal } from "../wire/deadline.ts";
import { CloseCode, LoginStep, RecordKind } from "../wire/protocol.ts";
import type { ScramVerifier } from "./scram.ts";
import { ScramClient } from "./scram_client.ts";
import { fakeScramVerifier, ScramServer } from "./scram_server.ts";
import { legacyMd5Hex, type UserVerifier } from "../users/userinfo.ts";

/** A user name and password, for {@link loginAsClient}. */
export interface Credentials {
  readonly user: string;
  readonly password: string;
  /** Salted passwords kept across logins (see `ScramClientOptions`). */
  readonly saltedPasswords?: Map<string, Uint8Array>;
}

/**
 * What the server needs of its users: lookup, and the md5 upgrade.
 * `UserStore` implements it; tests and embedders may pass their own.
 *
 * @example Usage
 * ```ts ignore
 * const users: UserDirectory = {
 *   lookup: (name) => name === "bob" ? bobVerifier : null,
 *   upgradeLegacy: () => Promise.resolve(false),
 * };
 * ```
 */
export interface UserDirectory {
  /**
   * A user's verifier; called once per login, so it should not do I/O.
   *
   * @param name The user name the client gave.
   * @returns The verifier, or `null` if there is no such user.
   */
  lookup(name: string): UserVerifier | null;
  /**
   * Replaces a legacy md5 verifier with a SCRAM-SHA-256 one, after the
   * user proved `password` against it.
   *
   * @param name The user name.
   * @param password The password the user just logged in with.
   * @param options The new verifier's PBKDF2 iterations.
   * @returns Whether the stored verifier was changed.
   * @throws {Error} If the users could not be written.
   */
  upgradeLegacy(
    name: string,
    password: string,
    options?: { iterations?: number },
  ): Promise<boolean>;
  /**
   * The iteration count most real verifiers use, given to the fake
   * verifiers of unknown names so that they look alike.
   *
   * @returns The count, or `null` (then the login option is used).
   */
  typicalIterations?(): number | null;
}

/** Options of {@link loginAsClient}. */
export interface ClientLoginOptions {
  /** Aborting fails the login with a `TimeoutError`. */
  signal?: AbortSignal;
}

/** Options of {@link loginAsServer}. */
export interface ServerLoginOptions {
  /** Aborting fails the login with a `TimeoutError`. */
  signal?: AbortSignal;
  /** Key of the stable fake salts given to unknown users. */
  fakeSaltKey: Uint8Array;
  /** Iterations of fake verifiers and of md5 upgrades. */
  iterations: number;
  /** Milliseconds to wait before answering `user` (its failure penalty). */
  delayFor?: (user: string) => number;
}

/** Why a login failed, for the server's log only (never sent). */
export class LoginFailure extends LoginRejectedError {
  /** The name the client tried. */
  readonly user: string;
  constructor(user: string, message: string) {
    super(message);
    this.name = "LoginFailure";
    this.user = user;
  }
}

/** Thrown by the server when a client sends messages before logging in. */
export class LoginRequiredError extends ProtocolError {
  constructor() {
    super("Client sent a message before logging in");
    this.name = "LoginRequiredError";
  }
}

/**
 * Logs in as `credentials.user` and checks the server's signature.
 *
 * @throws {LoginRejectedError} If the server refuses the user or password,
 *   asks for out-of-range iterations, or its signature is wrong.
 * @throws {ClosedError} If the server closes for another reason.
 * @throws {TimeoutError} If `options.signal` aborts first.
 */
export async function loginAsClient(
  channel: Channel,
  credentials: Credentials,
  options: ClientLoginOptions = {},
): Promise<void> {
  const scram = new ScramClient(credentials.user, credentials.password, {
    saltedPasswords: credentials.saltedPasswords,
  });
  const steps = async () => {
    sendStep(channel, LoginStep.clientFirst, scram.clientFirst());
    const first = await receiveStep(channel, "server");
    if (first.step === LoginStep.legacyRequest) {
      sendStep(channel, LoginStep.legacyPassword, credentials.password);
      expectStep(
        await receiveStep(channel, "server"),
        LoginStep.legacyAccepted,
      );
      return;
    }
    expectStep(first, LoginStep.serverFirst);
    sendStep(
      channel,
      LoginStep.clientFinal,
      await scram.clientFinal(first.text),
    );
    const final = await receiveStep(channel, "server");
    expectStep(final, LoginStep.serverFinal);
    scram.verifyServerFinal(final.text);
  };
  await raceSignal(steps(), options.signal, "Cannot log in: server too slow");
}

/**
 * Runs the server side of a login.
 *
 * @returns The user name that logged in.
 * @throws {LoginFailure} If the user is unknown or the proof is wrong (the
 *   caller answers with one generic `loginFailed` close).
 * @throws {LoginRequiredError} If the client sent a message instead.
 * @throws {ProtocolError} If a login message is malformed.
 * @throws {TimeoutError} If `options.signal` aborts first.
 */
export async function loginAsServer(
  channel: Channel,
  users: UserDirectory,
  options: ServerLoginOptions,
): Promise<string> {
  const steps = async () => {
    const first = await receiveStep(channel, "client");
    expectStep(first, LoginStep.clientFirst);
    const scram = new ScramServer();
    const user = scram.receiveClientFirst(first.text);
    await pause(options.delayFor?.(user) ?? 0, options.signal);
    const known = users.lookup(user);
    if (known?.kind === "md5") {
      return await legacyLogin(channel, users, { ...options, user, known });
    }
    const verifier: ScramVerifier = known?.scram ??
      fakeScramVerifier(
        options.fakeSaltKey,
        user,
        users.typicalIterations?.() ?? options.iterations,
      );
    sendStep(channel, LoginStep.serverFirst, scram.serverFirst(verifier));
    const final = await receiveStep(channel, "client");
    expectStep(final, LoginStep.clientFinal);
    const result = scram.receiveClientFinal(final.text);
    if (!known) throw new LoginFailure(user, "unknown user");
    if (!result.ok) throw new LoginFailure(user, "wrong password");
    sendStep(channel, LoginStep.serverFinal, result.serverFinal);
    return user;
  };
  return await raceSignal(
    steps(),
    options.signal,
    "Cannot finish login: client too slow",
  );
}

async function legacyLogin(
  channel: Channel,
  users: UserDirectory,
  context: ServerLoginOptions & {
    user: string;
    known: { kind: "md5"; md5Hex: string };
  },
): Promise<string> {
  const { user, known } = context;
  sendStep(channel, LoginStep.legacyRequest, "");
  const answer = await receiveStep(channel, "client");
  expectStep(answer, LoginStep.legacyPassword);
  const matches = constantTimeEqual(
    utf8(legacyMd5Hex(user, answer.text)),
    utf8(known.md5Hex),
  );
  if (!matches) throw new LoginFailure(user, "wrong password (legacy md5)");
  await users.upgradeLegacy(user, answer.text, {
    iterations: context.iterations,
  });
  sendStep(channel, LoginStep.legacyAccepted, "");
  return user;
}

/** Waits `ms`, ending early (silently) if `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

function sendStep(channel: Channel, step: number, text: string): void {
  channel.send(RecordKind.login, concatBytes(Uint8Array.of(step), utf8(text)));
}

interface Step {
  readonly step: number;
  readonly text: string;
}

async function receiveStep(channel: Channel, peer: string): Promise<Step> {
  const record = await channel.receive();
  if (record === null) throw closedDuringLogin(channel, peer);
  if (record.kind === RecordKind.message && peer === "client") {
    throw new LoginRequiredError();
  }
  return parseStep(record);
}

function parseStep(record: ChannelRecord): Step {
  if (record.kind !== RecordKind.login || record.body.length < 1) {
    throw new ProtocolError(
      `Cannot log in: unexpected record kind ${record.kind}`,
    );
  }
  try {
    return { step: record.body[0], text: fromUtf8(record.body.subarray(1)) };
  } catch (error) {
    throw new ProtocolError("Cannot log in: bad UTF-8", { cause: error });
  }
}

function expectStep(received: Step, step: number): void {
  if (received.step !== step) {
    throw new ProtocolError(
      `Cannot log in: expected step ${step}, got ${received.step}`,
    );
  }
}

function closedDuringLogin(channel: Channel, peer: string): Error {
  const info = channel.closeInfo;
  if (info?.code === CloseCode.loginFailed) {
    return new LoginRejectedError(
      "Login rejected: unknown user or wrong password",
    );
  }
  const why = info ? `: ${info.reason}` : "";
  return new ClosedError(
    `The ${peer} closed the connection during login${why}`,
  );
}
