import { Alert, Title } from '@mantine/core';

/** A page of the navigation whose screen is not written yet: it says so rather than pretending. */
export function NotBuiltYet({ title }: { title: string }) {
  return (
    <>
      <Title order={1} mb="md">
        {title}
      </Title>
      <Alert color="gray" title="Not built yet">
        This page of the dashboard is not written yet; the API already offers its data.
      </Alert>
    </>
  );
}
