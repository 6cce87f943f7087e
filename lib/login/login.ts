/**
 * Layer 4, login: drives SCRAM-SHA-256 (scram_client.ts, scram_server.ts)
 * or, for a legacy md5 line, the password check and upgrade, over `login`
 * records of an open Channel (docs/PROTOCOL.md, "Login"). It sends and
 * checks; the math lives in scram*.ts and the file in user_store.ts. SCRAM
 * is bound to the handshake (`channelBinding`), and a client answers a
 * legacy md5 request (which hands the password to whoever holds the key)
 * only when allowed to (`allowLegacyLogin`). It does not delay or penalise:
 * the server core does, with the typed error this layer throws.
 *
 * @module
 */

import { concatBytes, fromUtf8, utf8 } from "../wire/bytes.ts";
import type { Channel, ChannelRecord } from "../wire/channel.ts";
import {
  LoginFailure,
  LoginRejectedError,
  LoginRequiredError,
  ProtocolError,
} from "../errors.ts";
import { raceSignal, sleep } from "../wire/deadline.ts";
import { errorForClose } from "../wire/messages.ts";
import { LoginStep, RecordKind } from "../wire/protocol.ts";
import type { ScramVerifier } from "./scram.ts";
import { ScramClient } from "./scram_client.ts";
import { fakeScramVerifier, ScramServer } from "./scram_server.ts";
import { matchesLegacyMd5, type UserVerifier } from "./verifier.ts";

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
  /**
   * Registers `listener` for users removed from the directory (the user
   * file changed), so a server can close their sessions.
   *
   * @param listener Called with the names removed by one change.
   * @returns A function that unregisters the listener.
   */
  onUsersRemoved?(listener: (names: readonly string[]) => void): () => void;
}

/** Options of {@link loginAsClient}. */
export interface ClientLoginOptions {
  /** Aborting fails the login with a `TimeoutError`. */
  signal?: AbortSignal;
  /** The handshake's `SessionKeys.channelBinding`. */
  channelBinding: Uint8Array;
  /**
   * Answer a server's legacy md5 request with the plaintext password. Off:
   * anyone holding the pre-shared key could pose as the server and ask.
   *
   * @default {false}
   */
  allowLegacyLogin?: boolean;
}

/** Options of {@link loginAsServer}. */
export interface ServerLoginOptions {
  /** Aborting fails the login with a `TimeoutError`. */
  signal?: AbortSignal;
  /** The handshake's `SessionKeys.channelBinding`; SCRAM must bind to it. */
  channelBinding: Uint8Array;
  /**
   * The server secret (32 random bytes, never derived from the pre-shared
   * key) that the stable fake salts of unknown users are derived from.
   */
  fakeSaltKey: Uint8Array;
  /** Iterations of fake verifiers and of md5 upgrades. */
  iterations: number;
  /** Milliseconds to wait before answering `user` (its failure penalty). */
  delayFor?: (user: string) => number;
  /** Users the client's key may log in as (its ring entry); absent: any. */
  allowedUsers?: readonly string[];
  /**
   * Awaited once the client's proof (or legacy password) has arrived, just
   * before it is checked (the server's per-source and per-user login slots
   * and its penalty check); it may throw `LoginFailure` to fail the login
   * unevaluated.
   */
  beforeEvaluate?: (user: string) => Promise<void>;
}

/**
 * Logs in as `credentials.user` and checks the server's signature.
 *
 * @throws {LoginRejectedError} If the server refuses the user or password,
 *   asks for out-of-range iterations, its signature is wrong, or it asks
 *   for the legacy plaintext method without `allowLegacyLogin`.
 * @throws {ClosedError} If the server closes for another reason.
 * @throws {TimeoutError} If `options.signal` aborts first.
 */
export async function loginAsClient(
  channel: Channel,
  credentials: Credentials,
  options: ClientLoginOptions,
): Promise<void> {
  const scram = new ScramClient(credentials.user, credentials.password, {
    channelBinding: options.channelBinding,
    saltedPasswords: credentials.saltedPasswords,
  });
  const steps = async () => {
    sendStep(channel, LoginStep.clientFirst, scram.clientFirst());
    const first = await receiveStep(channel, "server");
    if (first.step === LoginStep.legacyRequest) {
      if (options.allowLegacyLogin !== true) {
        throw new LoginRejectedError(LEGACY_REFUSED);
      }
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

/** Why a client refuses a legacy md5 request (one line, names the flag). */
const LEGACY_REFUSED =
  "Cannot log in: the server asked for the legacy plaintext password method (md5); " +
  "the password was not sent. Allow it only for a server you trust with " +
  "--allow-legacy-login (connect() option allowLegacyLogin)";

/**
 * The verifier the server answers with: the user's, or a fake one for an
 * unknown name. Both paths do the same work (the fake verifier is always
 * built, and the iteration count is a stored value, not a scan of the
 * users), so their timing does not tell known names from unknown ones.
 *
 * @param users The user directory.
 * @param user The name the client gave.
 * @param options The fake-salt key and the fallback iteration count.
 * @returns The user's entry (`null` if unknown) and the verifier to use
 *   (`null` for a legacy md5 user).
 */
export function verifierFor(
  users: UserDirectory,
  user: string,
  options: Pick<
    ServerLoginOptions,
    "fakeSaltKey" | "iterations" | "allowedUsers"
  >,
): { known: UserVerifier | null; verifier: ScramVerifier | null } {
  // A user the key does not allow is treated as unknown: a wrong password.
  const known = options.allowedUsers?.includes(user) === false
    ? null
    : users.lookup(user);
  const fake = fakeScramVerifier(
    options.fakeSaltKey,
    user,
    users.typicalIterations?.() ?? options.iterations,
  );
  if (known === null) return { known, verifier: fake };
  return { known, verifier: known.kind === "md5" ? null : known.scram };
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
    const scram = new ScramServer({ channelBinding: options.channelBinding });
    const user = scram.receiveClientFirst(first.text);
    await sleep(options.delayFor?.(user) ?? 0, options.signal);
    const { known, verifier } = verifierFor(users, user, options);
    if (known?.kind === "md5") {
      return await legacyLogin(channel, users, { ...options, user, known });
    }
    if (verifier === null) throw new Error("Cannot log in: no verifier");
    sendStep(channel, LoginStep.serverFirst, scram.serverFirst(verifier));
    const final = await receiveStep(channel, "client");
    expectStep(final, LoginStep.clientFinal);
    await options.beforeEvaluate?.(user);
    const result = scram.receiveClientFinal(final.text);
    if (!known) throw new LoginFailure(user, "unknown user");
    if (result.reason === "channel-bindings-dont-match") {
      throw new LoginFailure(
        user,
        "channel binding differs: the login was made for another handshake (relayed?)",
      );
    }
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
  await context.beforeEvaluate?.(user);
  if (!matchesLegacyMd5(known, user, answer.text)) {
    throw new LoginFailure(user, "wrong password (legacy md5)");
  }
  await users.upgradeLegacy(user, answer.text, {
    iterations: context.iterations,
  });
  sendStep(channel, LoginStep.legacyAccepted, "");
  return user;
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
  return errorForClose(
    channel.closeInfo,
    `The ${peer} closed the connection during login`,
  );
}
