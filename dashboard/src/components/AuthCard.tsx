import type { ReactNode } from 'react';
import { Center, Paper, Text } from '@mantine/core';

/** The frame of the pages shown before sign-in. */
export function AuthCard({ children }: { children: ReactNode }) {
  return (
    <Center mih="100vh" p="md" component="main">
      <Paper withBorder shadow="sm" p="xl" radius="md" w="100%" maw={420}>
        <Text fw={700} size="lg" mb="md">
          PayForward
        </Text>
        {children}
      </Paper>
    </Center>
  );
}
