// Display texts of solana_sdk's TransactionError / InstructionError (what a real validator puts in
// "Transaction simulation failed: …"); clients parse these, so they are kept verbatim.
const TX_ERRORS = [
  'AccountInUse',
  'AccountLoadedTwice',
  'AccountNotFound',
  'ProgramAccountNotFound',
  'InsufficientFundsForFee',
  'InvalidAccountForFee',
  'AlreadyProcessed',
  'BlockhashNotFound',
  'CallChainTooDeep',
  'MissingSignatureForFee',
  'InvalidAccountIndex',
  'SignatureFailure',
  'InvalidProgramForExecution',
  'SanitizeFailure',
  'ClusterMaintenance',
  'AccountBorrowOutstanding',
  'WouldExceedMaxBlockCostLimit',
  'UnsupportedVersion',
  'InvalidWritableAccount',
  'WouldExceedMaxAccountCostLimit',
  'WouldExceedAccountDataBlockLimit',
  'TooManyAccountLocks',
  'AddressLookupTableNotFound',
  'InvalidAddressLookupTableOwner',
  'InvalidAddressLookupTableData',
  'InvalidAddressLookupTableIndex',
  'InvalidRentPayingAccount',
  'WouldExceedMaxVoteCostLimit',
  'WouldExceedAccountDataTotalLimit',
  'MaxLoadedAccountsDataSizeExceeded',
  'ResanitizationNeeded',
  'InvalidLoadedAccountsDataSizeLimit',
  'UnbalancedTransaction',
  'ProgramCacheHitMaxLimit',
  'CommitCancelled',
] as const;
const TX_ERROR_TEXT: Record<string, string> = {
  AccountNotFound: 'Attempt to debit an account but found no record of a prior credit.',
  InsufficientFundsForFee: 'Insufficient funds for fee',
  AlreadyProcessed: 'This transaction has already been processed',
  BlockhashNotFound: 'Blockhash not found',
  SignatureFailure: 'Transaction did not pass signature verification',
};
const IX_ERRORS = [
  'GenericError',
  'InvalidArgument',
  'InvalidInstructionData',
  'InvalidAccountData',
  'AccountDataTooSmall',
  'InsufficientFunds',
  'IncorrectProgramId',
  'MissingRequiredSignature',
  'AccountAlreadyInitialized',
  'UninitializedAccount',
  'UnbalancedInstruction',
  'ModifiedProgramId',
  'ExternalAccountLamportSpend',
  'ExternalAccountDataModified',
  'ReadonlyLamportChange',
  'ReadonlyDataModified',
  'DuplicateAccountIndex',
  'ExecutableModified',
  'RentEpochModified',
  'NotEnoughAccountKeys',
  'AccountDataSizeChanged',
  'AccountNotExecutable',
  'AccountBorrowFailed',
  'AccountBorrowOutstanding',
  'DuplicateAccountOutOfSync',
  'InvalidError',
  'ExecutableDataModified',
  'ExecutableLamportChange',
  'ExecutableAccountNotRentExempt',
  'UnsupportedProgramId',
  'CallDepth',
  'MissingAccount',
  'ReentrancyNotAllowed',
  'MaxSeedLengthExceeded',
  'InvalidSeeds',
  'InvalidRealloc',
  'ComputationalBudgetExceeded',
  'PrivilegeEscalation',
  'ProgramEnvironmentSetupFailure',
  'ProgramFailedToComplete',
  'ProgramFailedToCompile',
  'Immutable',
  'IncorrectAuthority',
  'AccountNotRentExempt',
  'InvalidAccountOwner',
  'ArithmeticOverflow',
  'UnsupportedSysvar',
  'IllegalOwner',
  'MaxAccountsDataAllocationsExceeded',
  'MaxAccountsExceeded',
  'MaxInstructionTraceLengthExceeded',
  'BuiltinProgramsMustConsumeComputeUnits',
  'BorshIoError',
] as const;

/** A JSON-RPC error answer: thrown by a method, turned into `{error: {code, message, data}}` by the server. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** The JSON form a real RPC gives a TransactionError (`"BlockhashNotFound"`, `{"InstructionError":[0,{"Custom":1}]}`). */
export function txErrorJson(err: unknown): unknown {
  if (typeof err === 'number') return TX_ERRORS[err] ?? `Unknown(${err})`;
  const e = err as Record<string, any>;
  if (typeof e?.index === 'number' && typeof e.err === 'function') {
    const inner = e.err();
    if (typeof inner === 'number') return { InstructionError: [e.index, IX_ERRORS[inner] ?? 'GenericError'] };
    if (typeof inner?.code === 'number') return { InstructionError: [e.index, { Custom: inner.code }] };
    if (typeof inner?.msg === 'string') return { InstructionError: [e.index, { BorshIoError: inner.msg }] };
    return { InstructionError: [e.index, 'GenericError'] };
  }
  if (typeof e?.index === 'number') return { DuplicateInstruction: e.index };
  if (typeof e?.accountIndex === 'number') {
    return String(e.constructor?.name).includes('Rent')
      ? { InsufficientFundsForRent: { account_index: e.accountIndex } }
      : { ProgramExecutionTemporarilyRestricted: { account_index: e.accountIndex } };
  }
  return String(err);
}

export function errorText(err: unknown): string {
  if (typeof err === 'string') return TX_ERROR_TEXT[err] ?? err;
  const e = err as Record<string, any>;
  if (e?.InstructionError) {
    const [i, ie] = e.InstructionError as [number, any];
    const what = typeof ie?.Custom === 'number' ? `custom program error: 0x${ie.Custom.toString(16)}` : typeof ie === 'string' ? ie : JSON.stringify(ie);
    return `Error processing Instruction ${i}: ${what}`;
  }
  if (e?.InsufficientFundsForRent) return `Transaction results in an account (${e.InsufficientFundsForRent.account_index}) with insufficient funds for rent`;
  return JSON.stringify(err);
}

export function preflightFailure(err: unknown, logs: string[]): RpcError {
  return new RpcError(-32002, `Transaction simulation failed: ${errorText(err)}`, {
    err,
    logs,
    accounts: null,
    unitsConsumed: 0,
    returnData: null,
  });
}
