/**
 * Domain errors: what services (shared by HTTP handlers and workers) throw. The HTTP edge maps them to
 * status codes; workers treat them as permanent failures.
 */
export class DomainError extends Error {}

export class NotFoundError extends DomainError {
  constructor(readonly resource: string) {
    super(`${resource} not found`);
  }
}

/** Input that is well-formed but unacceptable; `fields` name each offending field. */
export class InvalidInputError extends DomainError {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

export class ConflictError extends DomainError {}

/** Not done yet, nothing wrong with the request: the caller should retry later (HTTP 503). */
export class RetryLaterError extends DomainError {}
