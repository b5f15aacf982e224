/** The test identity of spec/kyc-and-accreditation.txt; the KYC sandbox approves it. */
export const johnSmith = {
  firstName: 'JOHN',
  lastName: 'SMITH',
  address: '222333 PEACHTREE PLACE',
  city: 'ATLANTA',
  state: 'GA',
  zip: '30318',
  country: 'USA',
  ssn: '112223333',
  dobMonth: '02',
  dobDay: '28',
  dobYear: '1975',
  email: 'john.smith@example.com',
  telephone: '4045551212',
  idType: 'driverLicense' as const,
  idIssuer: 'GA',
  idNumber: '0123456789',
};
