import { z } from 'zod';

/** A release commit: a non-empty string (YAML reads an unquoted all-digit commit as a number). */
export const commitSchema = z
  .string({
    error: (issue) =>
      issue.code === 'invalid_type' && issue.input !== undefined
        ? 'commit must be a string (quote a numeric commit)'
        : undefined,
  })
  .min(1, 'commit must not be empty');
