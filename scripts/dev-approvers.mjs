// The development approvers: broker users `approver-1` and `approver-2` (FLEET_APPROVERS to name
// others), one per human as a deployment would name them. scripts/broker-users.mjs creates them
// with the permissions of the `approver` role; scripts/fleet.mjs maps them to that role for the
// services (BROKER_USER_ROLES); `CALL_AS=approver-1 node scripts/call.mjs …` calls as one of them.
// Their password is BROKER_PASSWORD_<USER> (APPROVER_1), else the user's name, like the role users.
export const developmentApprovers = (process.env.FLEET_APPROVERS || 'approver-1,approver-2')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

/** The local development password of a broker user (roles and approvers alike). */
export const brokerPassword = (user) => process.env[`BROKER_PASSWORD_${user.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] || user;
